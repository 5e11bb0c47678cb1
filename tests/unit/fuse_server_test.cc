// FuseServer against hand-made request bytes: negotiation, framing, error paths, encoding.
#include "fuse/server/fuse_server.h"

#include <dirent.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kit/capturing_writer.h"
#include "kit/fuse_request.h"

namespace ferry::fuse {
namespace {

// A tiny filesystem: the root holds one file "f" (node 2) with fixed content and one xattr.
class TinyFs final : public Filesystem {
 public:
  Result<Entry> lookup(const RequestContext&, uint64_t parent, std::string_view name) override {
    if (parent != 1 || name != "f") return Error{ENOENT, "absent"};
    Entry e;
    e.nodeid = 2;
    e.attr.st_ino = 2;
    e.attr.st_mode = S_IFREG | 0644;
    e.attr.st_size = 5;
    e.entry_timeout = 1.5;
    return e;
  }
  Result<size_t> read(const RequestContext&, uint64_t, uint64_t, uint64_t offset,
                      std::span<std::byte> out) override {
    static const char kData[] = "hello";
    if (offset >= 5) return size_t{0};
    size_t n = std::min<size_t>(out.size(), 5 - offset);
    std::memcpy(out.data(), kData + offset, n);
    return n;
  }
  Status readdir(const RequestContext&, uint64_t, uint64_t, uint64_t offset, DirSink& sink) override {
    const char* names[] = {".", "..", "f", "a-longer-name"};
    for (uint64_t i = offset; i < 4; ++i) {
      if (!sink.add(names[i], i + 1, DT_REG, i + 1)) break;
    }
    return {};
  }
  Result<std::string> getxattr(const RequestContext&, uint64_t, std::string_view name) override {
    if (name != "user.k") return Error{ENODATA, "absent"};
    return std::string("value");
  }
};

using Reply = testkit::CapturedReply;
using CaptureWriter = testkit::CapturingWriter;

std::vector<std::byte> request(uint32_t opcode, uint64_t nodeid, uint64_t unique, const void* args,
                               size_t len) {
  return testkit::fuse_request(opcode, nodeid, unique, args, len);
}

class FuseServerTest : public ::testing::Test {
 protected:
  FuseServerTest() : server_(fs_, ServerOptions{}), scratch_(server_.reply_buffer_size()) {}

  Reply send(const std::vector<std::byte>& req) {
    size_t before = writer_.replies.size();
    server_.handle(req, scratch_, writer_);
    EXPECT_EQ(writer_.replies.size(), before + 1) << "expected exactly one reply";
    if (writer_.replies.empty()) return Reply{};
    EXPECT_TRUE(writer_.replies.back().framed) << "header length must match the bytes written";
    return writer_.replies.back();
  }
  bool no_reply(const std::vector<std::byte>& req) {
    size_t before = writer_.replies.size();
    server_.handle(req, scratch_, writer_);
    return writer_.replies.size() == before;
  }
  fuse_init_out init(uint32_t minor = 45, uint64_t flags = FUSE_INIT_EXT | FUSE_ASYNC_READ | FUSE_MAX_PAGES |
                                                           FUSE_NO_OPEN_SUPPORT | kInitHasResend) {
    fuse_init_in in{};
    in.major = 7;
    in.minor = minor;
    in.max_readahead = 131072;
    in.flags = static_cast<uint32_t>(flags);
    in.flags2 = static_cast<uint32_t>(flags >> 32U);
    Reply r = send(request(FUSE_INIT, 0, 1, &in, sizeof in));
    EXPECT_EQ(r.header.error, 0);
    fuse_init_out out{};
    EXPECT_EQ(r.payload.size(), sizeof out);
    std::memcpy(&out, r.payload.data(), std::min(sizeof out, r.payload.size()));
    return out;
  }

  TinyFs fs_;
  FuseServer server_;
  std::vector<std::byte> scratch_;
  CaptureWriter writer_;
};

TEST_F(FuseServerTest, InitNegotiatesOnlyOfferedFlagsAndRecordsTheKernelsOffer) {
  fuse_init_out out = init();
  EXPECT_EQ(out.major, 7U);
  EXPECT_EQ(out.minor, kMaxKnownMinor);
  uint64_t flags = out.flags | (uint64_t{out.flags2} << 32U);
  EXPECT_NE(flags & FUSE_MAX_PAGES, 0U);
  EXPECT_EQ(flags & FUSE_DO_READDIRPLUS, 0U) << "not offered, so not enabled";
  EXPECT_EQ(out.max_pages, 256);
  auto params = server_.init_params();
  ASSERT_TRUE(params.has_value());
  EXPECT_TRUE(params->kernel_can_resend());
  EXPECT_EQ(params->kernel_minor, 45U);
  EXPECT_EQ(params->max_read_size(), 256U * 4096U);
}

TEST_F(FuseServerTest, AnOlderKernelMinorIsKept) {
  fuse_init_out out = init(31, FUSE_ASYNC_READ);
  EXPECT_EQ(out.minor, 31U);
  EXPECT_FALSE(server_.init_params()->kernel_can_resend());
}

TEST_F(FuseServerTest, RequestsBeforeInitAreRefused) {
  const char name[] = "f";
  Reply r = send(request(FUSE_LOOKUP, 1, 7, name, sizeof name));
  EXPECT_EQ(r.header.error, -EIO);
  EXPECT_FALSE(server_.init_params().has_value());
}

TEST_F(FuseServerTest, RestoreStandsInForInit) {
  FuseInitParams p;
  p.major = 7;
  p.minor = 40;
  p.flags = FUSE_MAX_PAGES;
  p.max_pages = 256;
  server_.restore(p);
  const char name[] = "f";
  Reply r = send(request(FUSE_LOOKUP, 1, 9, name, sizeof name));
  EXPECT_EQ(r.header.error, 0);
  EXPECT_EQ(server_.init_params(), p);
}

TEST_F(FuseServerTest, LookupEncodesTheEntryAndEchoesAResentUnique) {
  init();
  const char name[] = "f";
  uint64_t unique = 42 | kUniqueResend;
  Reply r = send(request(FUSE_LOOKUP, 1, unique, name, sizeof name));
  EXPECT_EQ(r.header.unique, unique);
  ASSERT_EQ(r.header.error, 0);
  fuse_entry_out e{};
  ASSERT_EQ(r.payload.size(), sizeof e);
  std::memcpy(&e, r.payload.data(), sizeof e);
  EXPECT_EQ(e.nodeid, 2U);
  EXPECT_EQ(e.entry_valid, 1U);
  EXPECT_EQ(e.entry_valid_nsec, 500000000U);
  EXPECT_EQ(e.attr.size, 5U);
}

TEST_F(FuseServerTest, MalformedRequestsGetEinvalOrNothing) {
  init();
  const char unterminated[] = {'f', 'g'};
  EXPECT_EQ(send(request(FUSE_LOOKUP, 1, 3, unterminated, sizeof unterminated)).header.error, -EINVAL);
  auto bad_len = request(FUSE_GETATTR, 1, 4, nullptr, 0);
  bad_len.push_back(std::byte{0});  // the header claims fewer bytes than arrived
  EXPECT_EQ(send(bad_len).header.error, -EINVAL);
  uint32_t short_arg = 0;
  EXPECT_EQ(send(request(FUSE_READ, 2, 5, &short_arg, sizeof short_arg)).header.error, -EINVAL);
  std::vector<std::byte> tiny(10);
  EXPECT_TRUE(no_reply(tiny)) << "a request too short to name cannot be answered";
}

TEST_F(FuseServerTest, ModifyingOperationsAreReadOnlyAndUnknownOnesUnimplemented) {
  init();
  std::vector<std::byte> args(128);
  for (uint32_t op : {FUSE_SETATTR, FUSE_MKDIR, FUSE_UNLINK, FUSE_WRITE, FUSE_CREATE, FUSE_RENAME2,
                      FUSE_SETXATTR, FUSE_REMOVEXATTR, FUSE_LINK, FUSE_SYMLINK}) {
    EXPECT_EQ(send(request(op, 2, 10 + op, args.data(), args.size())).header.error, -EROFS)
        << "opcode " << op;
  }
  EXPECT_EQ(send(request(200, 1, 11, nullptr, 0)).header.error, -ENOSYS);
  EXPECT_EQ(send(request(FUSE_FLUSH, 2, 12, args.data(), args.size())).header.error, -ENOSYS);
}

TEST_F(FuseServerTest, ForgetAndInterruptHaveNoReply) {
  init();
  fuse_forget_in f{1};
  EXPECT_TRUE(no_reply(request(FUSE_FORGET, 2, 13, &f, sizeof f)));
  fuse_interrupt_in i{13};
  EXPECT_TRUE(no_reply(request(FUSE_INTERRUPT, 0, 14, &i, sizeof i)));
  std::vector<std::byte> batch(sizeof(fuse_batch_forget_in) + sizeof(fuse_forget_one));
  fuse_batch_forget_in b{5, 0};  // claims 5 entries, carries 1: must not read past the end
  std::memcpy(batch.data(), &b, sizeof b);
  EXPECT_TRUE(no_reply(request(FUSE_BATCH_FORGET, 0, 15, batch.data(), batch.size())));
}

TEST_F(FuseServerTest, ReadReturnsTheBytesAndStopsAtEnd) {
  init();
  fuse_read_in in{};
  in.offset = 1;
  in.size = 100;
  Reply r = send(request(FUSE_READ, 2, 16, &in, sizeof in));
  ASSERT_EQ(r.header.error, 0);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(r.payload.data()), r.payload.size()), "ello");
}

TEST_F(FuseServerTest, ReaddirEntriesAreAlignedAndResumable) {
  init();
  fuse_read_in in{};
  in.size = 4096;
  Reply r = send(request(FUSE_READDIR, 1, 17, &in, sizeof in));
  ASSERT_EQ(r.header.error, 0);
  size_t pos = 0;
  std::vector<std::string> names;
  while (pos < r.payload.size()) {
    fuse_dirent d{};
    std::memcpy(&d, r.payload.data() + pos, sizeof d);
    names.emplace_back(reinterpret_cast<const char*>(r.payload.data() + pos + FUSE_NAME_OFFSET), d.namelen);
    EXPECT_EQ(d.off, names.size());
    pos += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + d.namelen);
  }
  EXPECT_EQ(pos, r.payload.size());
  EXPECT_EQ(names, (std::vector<std::string>{".", "..", "f", "a-longer-name"}));
  // A buffer too small for the next entry yields fewer entries, never a split one.
  in.size = 40;
  in.offset = 2;
  r = send(request(FUSE_READDIR, 1, 18, &in, sizeof in));
  EXPECT_EQ(r.payload.size(), FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + 1));
}

TEST_F(FuseServerTest, GetxattrSizeProbeAndRange) {
  init();
  std::vector<std::byte> args(sizeof(fuse_getxattr_in) + 7);
  fuse_getxattr_in in{};
  std::memcpy(args.data() + sizeof in, "user.k", 7);
  std::memcpy(args.data(), &in, sizeof in);
  Reply r = send(request(FUSE_GETXATTR, 2, 19, args.data(), args.size()));
  ASSERT_EQ(r.header.error, 0);
  fuse_getxattr_out out{};
  std::memcpy(&out, r.payload.data(), sizeof out);
  EXPECT_EQ(out.size, 5U);
  in.size = 3;
  std::memcpy(args.data(), &in, sizeof in);
  EXPECT_EQ(send(request(FUSE_GETXATTR, 2, 20, args.data(), args.size())).header.error, -ERANGE);
  in.size = 64;
  std::memcpy(args.data(), &in, sizeof in);
  r = send(request(FUSE_GETXATTR, 2, 21, args.data(), args.size()));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(r.payload.data()), r.payload.size()), "value");
}

TEST_F(FuseServerTest, RandomBytesNeverCrashTheServer) {
  init();
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::vector<std::byte> req(rng() % 200);
    for (auto& b : req) b = static_cast<std::byte>(rng());
    if (req.size() >= sizeof(fuse_in_header) && (rng() % 2) == 0) {
      fuse_in_header h{};
      std::memcpy(&h, req.data(), sizeof h);
      h.len = static_cast<uint32_t>(req.size());
      h.opcode = static_cast<uint32_t>(rng() % 64);
      if (h.opcode == FUSE_INIT || h.opcode == FUSE_DESTROY) h.opcode = FUSE_GETATTR;
      std::memcpy(req.data(), &h, sizeof h);
    }
    server_.handle(req, scratch_, writer_);
  }
  EXPECT_TRUE(server_.init_params().has_value());
}

TEST_F(FuseServerTest, NotificationsAreEncodedAsTheKernelParsesThem) {
  EXPECT_TRUE(server_.notify_inval_entry(writer_, 1, "img").ok());
  EXPECT_TRUE(writer_.replies.empty()) << "before FUSE_INIT the kernel caches nothing: nothing to say";
  init();
  writer_.replies.clear();
  ASSERT_TRUE(server_.notify_inval_entry(writer_, 1, "img").ok());
  ASSERT_EQ(writer_.replies.size(), 1U);
  const Reply& entry = writer_.replies[0];
  EXPECT_TRUE(entry.framed);
  EXPECT_EQ(entry.header.unique, 0U) << "a notification, not a reply";
  EXPECT_EQ(entry.header.error, FUSE_NOTIFY_INVAL_ENTRY);
  ASSERT_EQ(entry.payload.size(), sizeof(fuse_notify_inval_entry_out) + 4);
  auto e = entry.as<fuse_notify_inval_entry_out>();
  EXPECT_EQ(e.parent, 1U);
  EXPECT_EQ(e.namelen, 3U);
  EXPECT_EQ(std::memcmp(entry.payload.data() + sizeof e, "img", 4), 0) << "the name and its NUL";

  ASSERT_TRUE(server_.notify_inval_inode(writer_, 1, 0, 0).ok());
  const Reply& inode = writer_.replies.at(1);
  EXPECT_EQ(inode.header.error, FUSE_NOTIFY_INVAL_INODE);
  ASSERT_EQ(inode.payload.size(), sizeof(fuse_notify_inval_inode_out));
  auto i = inode.as<fuse_notify_inval_inode_out>();
  EXPECT_EQ(i.ino, 1U);
  EXPECT_EQ(i.off, 0);
  EXPECT_EQ(i.len, 0);

  ASSERT_TRUE(FuseServer::notify_resend(writer_).ok());
  EXPECT_EQ(writer_.replies.at(2).header.error, kNotifyResend);
  EXPECT_TRUE(writer_.replies.at(2).payload.empty());

  writer_.result = -ENOENT;  // the kernel had nothing cached under that name
  EXPECT_TRUE(server_.notify_inval_entry(writer_, 1, "absent").ok());
  writer_.result = -ENODEV;  // the connection is gone
  auto gone = server_.notify_inval_inode(writer_, 1, 0, 0);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ENODEV);
  writer_.result = 0;
  const size_t before = writer_.replies.size();
  EXPECT_EQ(server_.notify_inval_entry(writer_, 1, "").error().code, EINVAL);
  EXPECT_EQ(server_.notify_inval_entry(writer_, 1, std::string(256, 'n')).error().code, EINVAL);
  EXPECT_EQ(writer_.replies.size(), before) << "a bad name is refused before anything is written";
}

// Records what the server tells its observer.
class RecordingObserver final : public RequestObserver {
 public:
  struct Call {
    unsigned worker;
    uint32_t opcode;
    int error;
    uint64_t data_bytes;
  };
  void on_begin(unsigned worker, uint32_t opcode, uint64_t, uint64_t) override { begun.push_back({worker, opcode, 0, 0}); }
  void on_end(unsigned worker, uint32_t opcode, int error, uint64_t data_bytes) override {
    ended.push_back({worker, opcode, error, data_bytes});
  }
  std::vector<Call> begun, ended;
};

TEST(FuseServerObserver, SeesEveryRequestWithItsWorkerErrorAndFileDataBytes) {
  TinyFs fs;
  RecordingObserver seen;
  FuseServer server(fs, ServerOptions{}, &seen);
  std::vector<std::byte> scratch(server.reply_buffer_size());
  testkit::CapturingWriter out;
  fuse_init_in init{};
  init.major = 7;
  init.minor = 40;
  server.handle(request(FUSE_INIT, 0, 1, &init, sizeof init), scratch, out, 3);
  fuse_read_in in{};
  in.size = 100;
  server.handle(request(FUSE_READ, 2, 2, &in, sizeof in), scratch, out, 1);
  server.handle(testkit::fuse_request_named(FUSE_LOOKUP, 1, 3, "f"), scratch, out, 2);
  server.handle(testkit::fuse_request_named(FUSE_LOOKUP, 1, 4, "absent"), scratch, out, 2);
  ASSERT_EQ(seen.begun.size(), 4U);
  ASSERT_EQ(seen.ended.size(), 4U);
  EXPECT_EQ(seen.ended[0].worker, 3U);
  EXPECT_EQ(seen.ended[0].data_bytes, 0U) << "INIT's reply is no file data";
  EXPECT_EQ(seen.ended[1].opcode, static_cast<uint32_t>(FUSE_READ));
  EXPECT_EQ(seen.ended[1].worker, 1U);
  EXPECT_EQ(seen.ended[1].data_bytes, 5U) << "the file's five bytes";
  EXPECT_EQ(seen.ended[2].data_bytes, 0U) << "an entry is no file data";
  EXPECT_EQ(seen.ended[2].error, 0);
  EXPECT_EQ(seen.ended[3].error, ENOENT);
}

TEST(FuseServerNames, OpcodeNamesComeFromTheTable) {
  EXPECT_EQ(FuseServer::opcode_name(FUSE_READ), "read");
  EXPECT_EQ(FuseServer::opcode_name(FUSE_READDIRPLUS), "readdirplus");
  EXPECT_EQ(FuseServer::opcode_name(FUSE_FLUSH), "flush");
  EXPECT_EQ(FuseServer::opcode_name(FUSE_WRITE), "write");
  EXPECT_TRUE(FuseServer::opcode_name(63).empty());
  EXPECT_TRUE(FuseServer::opcode_name(4096).empty());
}

}  // namespace
}  // namespace ferry::fuse
