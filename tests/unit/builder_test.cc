// The builder's pieces on their own: entry names, the merge rules of the Tree, the chunk table's
// encoder and its validating parser, the chunk codecs, the BlobStore's dedup and holes, the layer
// streams' integrity checks, and the bootstrap writer read back by Ferry's EROFS reader. (The
// kernel's erofs, fsck.erofs and umoci judge the whole in tests/e2e/ferry_image_test.cc.)
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "builder/blob_store.h"
#include "builder/erofs_writer.h"
#include "builder/layer_stream.h"
#include "builder/prefetch_list.h"
#include "builder/tree.h"
#include "kit/memory_source.h"
#include "erofs/chunk_table.h"
#include "erofs/erofs_image.h"
#include "storage/chunk_codec.h"
#include "support/test_support.h"

namespace ferry::builder {
namespace {

using erofs::ChunkTable;
using testkit::MemorySource;
using erofs::Compression;

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

PathParts p(const std::string& path) {
  auto r = split_entry_path(path);
  EXPECT_TRUE(r.ok()) << path << ": " << r.error().message;
  return r.ok() ? *r : PathParts{};
}

std::shared_ptr<Node> node(uint32_t mode, std::string target = {}) {
  auto n = std::make_shared<Node>();
  n->mode = mode;
  n->link_target = std::move(target);
  return n;
}

const Node* find(const Tree& tree, const std::string& path) {
  const Node* n = &tree.root();
  for (const auto& part : p(path)) {
    auto it = n->children.find(part);
    if (it == n->children.end()) return nullptr;
    n = it->second.node.get();
  }
  return n;
}

TEST(EntryPath, SplitsAndRefusesEscapes) {
  EXPECT_EQ(p("./a//b/./c/"), (PathParts{"a", "b", "c"}));
  EXPECT_EQ(p("./"), PathParts{});
  EXPECT_FALSE(split_entry_path("/etc/passwd").ok());
  EXPECT_FALSE(split_entry_path("a/../../b").ok());
  EXPECT_FALSE(split_entry_path("..").ok());
  EXPECT_FALSE(split_entry_path(std::string(256, 'x')).ok());
  EXPECT_TRUE(split_entry_path(std::string(255, 'x')).ok());
  EXPECT_NE(split_entry_path("a/../b").error().message.find("a/../b"), std::string::npos);
}

TEST(Tree, WhiteoutsOpaqueDirsAndReplacement) {
  Tree t;
  ASSERT_TRUE(t.add(p("d"), node(S_IFDIR | 0755), 0).ok());
  ASSERT_TRUE(t.add(p("d/old"), node(S_IFREG | 0644), 0).ok());
  ASSERT_TRUE(t.add(p("d/sub"), node(S_IFDIR | 0755), 0).ok());
  ASSERT_TRUE(t.add(p("d/sub/deep"), node(S_IFREG | 0644), 0).ok());
  ASSERT_TRUE(t.add(p("f"), node(S_IFREG | 0644), 0).ok());
  // Layer 1 re-declares d (new mode, children kept until the opaque marker), adds d/new,
  // re-declares d/sub, then makes d opaque: only what layer 1 wrote survives, recursively.
  ASSERT_TRUE(t.add(p("d"), node(S_IFDIR | 0700), 1).ok());
  EXPECT_NE(find(t, "d/old"), nullptr);
  EXPECT_EQ(find(t, "d")->mode, S_IFDIR | 0700U);
  ASSERT_TRUE(t.add(p("d/new"), node(S_IFREG | 0600), 1).ok());
  ASSERT_TRUE(t.add(p("d/sub"), node(S_IFDIR | 0755), 1).ok());
  ASSERT_TRUE(t.opaque(p("d"), 1).ok());
  EXPECT_EQ(find(t, "d/old"), nullptr);
  EXPECT_NE(find(t, "d/new"), nullptr);
  EXPECT_NE(find(t, "d/sub"), nullptr);
  EXPECT_EQ(find(t, "d/sub/deep"), nullptr);
  // A file over a directory replaces it, and a directory over a file.
  ASSERT_TRUE(t.add(p("d"), node(S_IFREG | 0644), 2).ok());
  EXPECT_TRUE(find(t, "d")->children.empty());
  ASSERT_TRUE(t.add(p("f"), node(S_IFDIR | 0755), 2).ok());
  EXPECT_TRUE(find(t, "f")->is_dir());
  // Whiteouts remove subtrees; a missing one is fine; a parent that is a file is an error.
  ASSERT_TRUE(t.whiteout(p("f")).ok());
  EXPECT_EQ(find(t, "f"), nullptr);
  EXPECT_TRUE(t.whiteout(p("nothing/here")).ok());
  EXPECT_FALSE(t.add(p("d/x"), node(S_IFREG | 0644), 2).ok());
  // Missing parents are made.
  ASSERT_TRUE(t.add(p("made/by/entry"), node(S_IFREG | 0644), 2).ok());
  EXPECT_EQ(find(t, "made/by")->mode, S_IFDIR | 0755U);
}

TEST(Tree, FollowsSymlinkedParentsInsideTheImage) {
  Tree t;
  ASSERT_TRUE(t.add(p("usr"), node(S_IFDIR | 0755), 0).ok());
  ASSERT_TRUE(t.add(p("usr/bin"), node(S_IFDIR | 0755), 0).ok());
  ASSERT_TRUE(t.add(p("bin"), node(S_IFLNK | 0777, "usr/bin"), 0).ok());
  ASSERT_TRUE(t.add(p("abs"), node(S_IFLNK | 0777, "/usr/bin"), 0).ok());
  ASSERT_TRUE(t.add(p("up"), node(S_IFLNK | 0777, "../../../usr"), 0).ok());
  ASSERT_TRUE(t.add(p("loop"), node(S_IFLNK | 0777, "loop"), 0).ok());
  ASSERT_TRUE(t.add(p("bin/sh"), node(S_IFREG | 0755), 1).ok());
  ASSERT_TRUE(t.add(p("abs/ls"), node(S_IFREG | 0755), 1).ok());
  ASSERT_TRUE(t.add(p("up/bin/cat"), node(S_IFREG | 0755), 1).ok());  // ".." stops at the root
  EXPECT_NE(find(t, "usr/bin/sh"), nullptr);
  EXPECT_NE(find(t, "usr/bin/ls"), nullptr);
  EXPECT_NE(find(t, "usr/bin/cat"), nullptr);
  EXPECT_TRUE(S_ISLNK(find(t, "bin")->mode)) << "the symlink itself stays";
  auto looped = t.add(p("loop/x"), node(S_IFREG | 0644), 1);
  ASSERT_FALSE(looped.ok());
  EXPECT_EQ(looped.error().code, ELOOP);
  ASSERT_TRUE(t.whiteout(p("bin/sh")).ok());
  EXPECT_EQ(find(t, "usr/bin/sh"), nullptr);
}

TEST(Tree, HardLinksShareOneNode) {
  Tree t;
  ASSERT_TRUE(t.add(p("a"), node(S_IFREG | 0644), 0).ok());
  ASSERT_TRUE(t.add(p("dir"), node(S_IFDIR | 0755), 0).ok());
  ASSERT_TRUE(t.link(p("dir/b"), p("a"), 0).ok());
  EXPECT_EQ(find(t, "a"), find(t, "dir/b"));
  EXPECT_FALSE(t.link(p("c"), p("missing"), 0).ok());
  EXPECT_FALSE(t.link(p("c"), p("dir"), 0).ok());
  ASSERT_TRUE(t.whiteout(p("a")).ok());
  EXPECT_NE(find(t, "dir/b"), nullptr);
}

ChunkTable sample_table(Compression compressor) {
  ChunkTable t;
  t.chunk_size = 1U << 20U;
  erofs::BlobInfo b;
  b.digest.fill(0xAB);
  b.device_id = 1;
  b.compressor = compressor;
  b.chunk_count = 2;
  for (int i = 0; i < 2; ++i) {
    erofs::ChunkInfo c;
    c.device_offset = i * 8192U;
    c.size = 5000;
    c.compression = compressor;
    c.stored_size = compressor == Compression::kNone ? 5000 : 1000;
    c.blob_offset = compressor == Compression::kNone ? c.device_offset : i * 1000U;
    c.digest.fill(static_cast<uint8_t>(i));
    t.chunks.push_back(c);
  }
  b.device_size = 16384;
  b.blob_size = compressor == Compression::kNone ? 16384 : 2000;
  t.blobs.push_back(b);
  return t;
}

TEST(ChunkTable, RoundTripsAndFindsChunks) {
  for (Compression c : {Compression::kNone, Compression::kZstd}) {
    const ChunkTable t = sample_table(c);
    auto bytes = erofs::encode_chunk_table(t);
    auto parsed = erofs::parse_chunk_table(bytes);
    ASSERT_TRUE(parsed.ok()) << parsed.error().message;
    ASSERT_EQ(parsed->chunks.size(), 2U);
    EXPECT_EQ(parsed->chunks[1].blob_offset, t.chunks[1].blob_offset);
    EXPECT_EQ(parsed->find(1, 0), &parsed->chunks[0]);
    EXPECT_EQ(parsed->find(1, 8191), &parsed->chunks[1 - 1]);  // padding of chunk 0 (5000 -> 8192)
    EXPECT_EQ(parsed->find(1, 8192), &parsed->chunks[1]);
    EXPECT_EQ(parsed->find(1, 16384), nullptr);
    EXPECT_EQ(parsed->find(2, 0), nullptr);
  }
}

TEST(ChunkTable, RefusesEveryInconsistency) {
  const auto good = erofs::encode_chunk_table(sample_table(Compression::kZstd));
  const size_t blob = 64, chunk0 = 128, chunk1 = 192;
  struct Patch {
    const char* what;
    size_t offset;
    uint64_t value;
    size_t width;
  };
  const Patch patches[] = {
      {"magic", 0, 'X', 1},
      {"version", 8, 2, 4},
      {"header size", 12, 60, 4},
      {"blob count", 16, 2, 4},
      {"block size", 36, 512, 4},
      {"chunk size", 40, 3000, 4},
      {"reserved", 50, 1, 1},
      {"device id", blob + 60, 2, 2},
      {"compressor", blob + 62, 9, 1},
      {"first chunk", blob + 48, 1, 8},
      {"device size", blob + 40, 4097, 8},
      {"unaligned chunk", chunk0, 100, 8},
      {"overlap", chunk1, 4096, 8},
      {"past device", chunk1, 16384, 8},
      {"zero size", chunk0 + 16, 0, 4},
      {"oversize", chunk0 + 16, (1U << 20U) + 1, 4},
      {"stored past blob", chunk1 + 8, 1500, 8},
      {"compression code", chunk0 + 24, 7, 1},
      {"chunk reserved", chunk0 + 27, 1, 1},
  };
  for (const Patch& patch : patches) {
    auto bytes = good;
    std::memcpy(bytes.data() + patch.offset, &patch.value, patch.width);
    EXPECT_FALSE(erofs::parse_chunk_table(bytes).ok()) << patch.what;
  }
  EXPECT_FALSE(erofs::parse_chunk_table(std::span(good).first(good.size() - 8)).ok());
  // An uncompressed blob must be its device.
  auto none = sample_table(Compression::kNone);
  none.chunks[1].blob_offset = 4096 * 3;
  EXPECT_FALSE(erofs::parse_chunk_table(erofs::encode_chunk_table(none)).ok());
}

TEST(ChunkTable, PrefetchRangesRoundTripAndAreChecked) {
  ChunkTable t = sample_table(Compression::kZstd);
  t.prefetch = {{1, 1}, {0, 2}};
  auto parsed = erofs::parse_chunk_table(erofs::encode_chunk_table(t));
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ASSERT_EQ(parsed->prefetch.size(), 2U);
  EXPECT_EQ(parsed->prefetch[0].first_chunk, 1U);
  EXPECT_EQ(parsed->prefetch[1].chunk_count, 2U);
  for (erofs::PrefetchRange bad : {erofs::PrefetchRange{1, 2}, erofs::PrefetchRange{0, 0},
                                   erofs::PrefetchRange{2, 1}, erofs::PrefetchRange{~0ULL, 1}}) {
    t.prefetch = {bad};
    EXPECT_FALSE(erofs::parse_chunk_table(erofs::encode_chunk_table(t)).ok()) << bad.first_chunk << "+" << bad.chunk_count;
  }
  t.prefetch = {{0, 1}};
  auto bytes = erofs::encode_chunk_table(t);
  bytes[bytes.size() - 1] = std::byte{1};  // the record's reserved bytes
  EXPECT_FALSE(erofs::parse_chunk_table(bytes).ok());
  bytes = erofs::encode_chunk_table(t);
  bytes[44] = std::byte{2};  // a count the table's bytes do not hold
  EXPECT_FALSE(erofs::parse_chunk_table(bytes).ok());
}

TEST(PrefetchList, ResolvesFilesAndDirectoriesInOrderEachChunkOnce) {
  const ChunkTable table = sample_table(Compression::kZstd);  // chunk 0 at block 0, chunk 1 at block 2
  Tree tree;
  auto file = [](std::vector<ChunkRef> chunks) {
    auto n = node(S_IFREG | 0644);
    n->chunks = std::move(chunks);
    return n;
  };
  ASSERT_TRUE(tree.add(p("a"), file({{1, 2}}), 0).ok());
  ASSERT_TRUE(tree.add(p("d/b"), file({{1, 0}, {}}), 0).ok());  // a chunk and a hole
  ASSERT_TRUE(tree.add(p("d/c"), file({{1, 2}}), 0).ok());      // a chunk a/ also has
  ASSERT_TRUE(tree.add(p("l"), node(S_IFLNK | 0777, "a"), 0).ok());

  auto ranges = resolve_prefetch(tree, table, {"/a", "d"});
  ASSERT_TRUE(ranges.ok()) << ranges.error().message;
  ASSERT_EQ(ranges->size(), 2U);  // chunk 1 (a), then chunk 0 (d/b); d/c's chunk is listed already
  EXPECT_EQ((*ranges)[0].first_chunk, 1U);
  EXPECT_EQ((*ranges)[1].first_chunk, 0U);
  EXPECT_EQ((*ranges)[1].chunk_count, 1U);

  ranges = resolve_prefetch(tree, table, {"d", "a"});
  ASSERT_TRUE(ranges.ok());
  ASSERT_EQ(ranges->size(), 1U);  // d/b's chunk 0 and d/c's chunk 1 merge
  EXPECT_EQ((*ranges)[0].chunk_count, 2U);

  EXPECT_EQ(resolve_prefetch(tree, table, {"missing"}).error().code, ENOENT);
  EXPECT_EQ(resolve_prefetch(tree, table, {"a/x"}).error().code, ENOENT);
  EXPECT_EQ(resolve_prefetch(tree, table, {"l"}).error().code, EINVAL);
  EXPECT_FALSE(resolve_prefetch(tree, table, {"../etc"}).ok());
  ranges = resolve_prefetch(tree, table, {});
  ASSERT_TRUE(ranges.ok());
  EXPECT_TRUE(ranges->empty());
}

TEST(ChunkTable, LoadChecksHeaderAndDevices) {
  const auto table = erofs::encode_chunk_table(sample_table(Compression::kZstd));
  std::vector<std::byte> file(8192 + table.size());
  std::memcpy(file.data() + 8192, table.data(), table.size());
  const auto header = erofs::encode_ferry_header(8192, table);
  std::memcpy(file.data(), header.data(), header.size());
  auto loaded = erofs::load_chunk_table(MemorySource(file, "bootstrap"));
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  ASSERT_TRUE(loaded->has_value());
  erofs::DeviceSlot slot;
  slot.device_id = 1;
  slot.tag = erofs::digest_hex((*loaded)->blobs[0].digest);
  slot.blocks = 4;
  EXPECT_TRUE(erofs::check_chunk_table_devices(**loaded, std::span(&slot, 1)).ok());
  slot.tag[0] = '0';
  EXPECT_FALSE(erofs::check_chunk_table_devices(**loaded, std::span(&slot, 1)).ok());
  // A flipped table byte, a flipped header byte, a table past the end; no header at all.
  for (size_t at : {size_t{8192 + 70}, size_t{20}}) {
    auto bad = file;
    bad[at] ^= std::byte{1};
    EXPECT_FALSE(erofs::load_chunk_table(MemorySource(bad, "bootstrap")).ok()) << at;
  }
  EXPECT_FALSE(erofs::load_chunk_table(MemorySource(std::span(file).first(8192 + 100), "bootstrap")).ok());
  std::vector<std::byte> plain(4096);
  auto none = erofs::load_chunk_table(MemorySource(plain, "plain"));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(ChunkCodec, RoundTripsAndRefusesCorruptInput) {
  const std::string text(200000, 'z');
  for (Compression c : {Compression::kZstd, Compression::kLz4}) {
    storage::ChunkCompressor codec(c);
    std::vector<std::byte> stored;
    auto how = codec.compress(bytes_of(text), stored);
    ASSERT_TRUE(how.ok());
    EXPECT_EQ(*how, c);
    EXPECT_LT(stored.size(), text.size() / 10);
    std::vector<std::byte> out(text.size());
    ASSERT_TRUE(storage::decompress_chunk(c, stored, out).ok());
    EXPECT_EQ(std::memcmp(out.data(), text.data(), text.size()), 0);
    std::vector<std::byte> wrong_size(text.size() - 1);
    EXPECT_FALSE(storage::decompress_chunk(c, stored, wrong_size).ok());
    stored[stored.size() / 2] ^= std::byte{0xFF};
    stored.resize(stored.size() - 3);
    EXPECT_FALSE(storage::decompress_chunk(c, stored, out).ok());
    // Incompressible bytes are stored as they are.
    std::string noise(4096, '\0');
    for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>((i * 2654435761U) >> 13U);
    auto raw = codec.compress(bytes_of(noise), stored);
    ASSERT_TRUE(raw.ok());
    if (*raw == Compression::kNone) {
      EXPECT_EQ(stored.size(), noise.size());
    }
  }
  EXPECT_FALSE(storage::parse_compression("gzip").ok());
}

TEST(BlobStore, DeduplicatesAcrossLayersAndSkipsHoles) {
  test::TempDir dir;
  BlobStore store(dir.path(), Compression::kZstd, 4096);
  const std::string a(4096, 'a'), b(100, 'b'), zeros(4096, '\0');
  ASSERT_TRUE(store.begin_layer(0).ok());
  auto ra = store.add(bytes_of(a));
  auto rb = store.add(bytes_of(b));
  auto hole = store.add(bytes_of(zeros));
  ASSERT_TRUE(ra.ok() && rb.ok() && hole.ok());
  EXPECT_EQ(ra->device_id, 1);
  EXPECT_EQ(ra->blkaddr, 0U);
  EXPECT_EQ(rb->blkaddr, 1U);
  EXPECT_EQ(hole->blkaddr, 0xFFFFFFFFU);
  ASSERT_TRUE(store.begin_layer(1).ok());  // adds nothing new: no blob
  EXPECT_EQ(store.add(bytes_of(a))->device_id, 1);
  ASSERT_TRUE(store.begin_layer(2).ok());
  auto rc = store.add(bytes_of(std::string(10, 'c')));
  EXPECT_EQ(rc->device_id, 2);
  ASSERT_TRUE(store.end_layer().ok());
  EXPECT_EQ(store.stats().chunks_stored, 3U);
  EXPECT_EQ(store.stats().bytes_deduplicated, 4096U);
  EXPECT_EQ(store.stats().holes, 1U);
  ASSERT_EQ(store.blobs().size(), 2U);
  EXPECT_EQ(store.blobs()[1].layer, 2U);
  EXPECT_TRUE(erofs::parse_chunk_table(erofs::encode_chunk_table(store.table())).ok());
  // Nothing is named until commit; then every blob is DIR/<sha256 of its bytes>.
  size_t named = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    named += e.path().filename().string()[0] != '.';
  EXPECT_EQ(named, 0U);
  ASSERT_TRUE(store.commit().ok());
  for (const auto& blob : store.blobs()) {
    const std::string content = test::read_file(blob.path);
    EXPECT_EQ(erofs::digest_hex(storage::sha256(bytes_of(content))), erofs::digest_hex(blob.info.digest));
  }
}

std::string gzip(const std::string& data) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(compressBound(data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

Result<std::string> drain(const std::string& input) {
  FERRY_ASSIGN(auto stream, LayerStream::open("", bytes_of(input)));
  std::string out;
  for (;;) {
    FERRY_ASSIGN(auto piece, stream->read());
    if (piece.empty()) break;
    out.append(reinterpret_cast<const char*>(piece.data()), piece.size());
  }
  return out;
}

TEST(LayerStream, ChecksGzipMembersTrailersAndPadding) {
  const std::string one(300000, 'x'), two = "second member";
  auto both = drain(gzip(one) + gzip(two) + std::string(512, '\0'));
  ASSERT_TRUE(both.ok()) << both.error().message;
  EXPECT_EQ(*both, one + two);
  EXPECT_FALSE(drain(gzip(one) + "junk").ok());
  std::string bad_crc = gzip(one);
  bad_crc[bad_crc.size() - 6] ^= 1;
  EXPECT_FALSE(drain(bad_crc).ok());
  EXPECT_FALSE(drain(gzip(one).substr(0, 100)).ok());
  auto plain = drain("not compressed at all");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, "not compressed at all");
}

// A tree with every kind of node, written and read back with Ferry's EROFS reader.
TEST(BootstrapWriter, ReadsBackWithTheErofsReader) {
  Tree t;
  auto root = node(S_IFDIR | 0711);
  root->mtime = 1700000000;
  ASSERT_TRUE(t.add({}, root, 0).ok());
  auto file = node(S_IFREG | 04755);
  file->size = 4096 * 3 + 10;  // chunks of 4096: data, hole, data, tail
  file->chunks = {{1, 0}, {}, {1, 1}, {1, 2}};
  file->uid = 70000;
  file->gid = 80000;
  file->mtime = 1234567890;
  file->mtime_nsec = 987654321;
  file->xattrs = {{"user.k", "v"}, {"security.capability", std::string(20, '\1')}, {"trusted.x", ""}};
  ASSERT_TRUE(t.add(p("f"), file, 0).ok());
  ASSERT_TRUE(t.link(p("hard"), p("f"), 0).ok());
  ASSERT_TRUE(t.add(p("s"), node(S_IFLNK | 0777, "target/of/link"), 0).ok());
  ASSERT_TRUE(t.add(p("long"), node(S_IFLNK | 0777, std::string(4000, 'l')), 0).ok());
  auto chr = node(S_IFCHR | 0600);
  chr->rdev_major = 4;
  chr->rdev_minor = 300;
  ASSERT_TRUE(t.add(p("c"), chr, 0).ok());
  ASSERT_TRUE(t.add(p("fifo"), node(S_IFIFO | 0644), 0).ok());
  ASSERT_TRUE(t.add(p("many"), node(S_IFDIR | 0755), 0).ok());
  for (int i = 0; i < 600; ++i)
    ASSERT_TRUE(t.add(p("many/n" + std::to_string(i)), node(S_IFREG | 0644), 0).ok());

  std::string blob(4096 * 3, '\0');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>('A' + i / 4096);
  BootstrapSpec spec;
  spec.root = &t.root();
  spec.chunk_size = 4096;
  spec.devices = {{std::string(64, 'e'), 3}};
  auto boot = write_bootstrap(spec);
  ASSERT_TRUE(boot.ok()) << boot.error().message;
  auto meta = std::make_shared<MemorySource>(boot->bytes, "bootstrap");
  auto image = erofs::ErofsImage::open(
      meta, [&](const erofs::DeviceSlot& slot) -> Result<std::shared_ptr<const ByteSource>> {
        EXPECT_EQ(slot.tag, std::string(64, 'e'));
        EXPECT_EQ(slot.blocks, 3U);
        return std::shared_ptr<const ByteSource>(
            std::make_shared<MemorySource>(bytes_of(blob), "blob", false));
      });
  ASSERT_TRUE(image.ok()) << image.error().message;
  const auto& img = **image;
  auto root_inode = img.inode(img.superblock().root_nid);
  ASSERT_TRUE(root_inode.ok());
  EXPECT_EQ(root_inode->mode, S_IFDIR | 0711U);
  EXPECT_EQ(root_inode->nlink, 3U);
  EXPECT_EQ(root_inode->mtime, 1700000000U);
  auto lookup = [&](const erofs::Inode& dir, const std::string& name) {
    auto nid = img.lookup(dir, name);
    EXPECT_TRUE(nid.ok()) << name;
    return img.inode(nid.ok() ? *nid : 0).value();
  };
  const erofs::Inode f = lookup(*root_inode, "f");
  EXPECT_EQ(f.nid, lookup(*root_inode, "hard").nid);
  EXPECT_EQ(f.nlink, 2U);
  EXPECT_EQ(f.mode, S_IFREG | 04755U);
  EXPECT_EQ(f.uid, 70000U);
  EXPECT_EQ(f.gid, 80000U);
  EXPECT_EQ(f.mtime_nsec, 987654321U);
  std::string content(f.size, '?');
  auto n = img.read(f, 0, std::as_writable_bytes(std::span(content.data(), content.size())));
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(content,
            std::string(4096, 'A') + std::string(4096, '\0') + std::string(4096, 'B') + std::string(10, 'C'));
  auto places = erofs::chunk_places(img, f);
  ASSERT_TRUE(places.ok()) << places.error().message;
  ASSERT_EQ(places->size(), 4U);
  EXPECT_EQ((*places)[1].blkaddr, 0xFFFFFFFFU);
  EXPECT_EQ((*places)[3].device_id, 1);
  EXPECT_EQ((*places)[3].blkaddr, 2U);
  EXPECT_EQ(img.get_xattr(f, "user.k").value(), "v");
  EXPECT_EQ(img.get_xattr(f, "security.capability").value(), std::string(20, '\1'));
  EXPECT_EQ(img.get_xattr(f, "trusted.x").value(), "");
  EXPECT_EQ(img.read_link(lookup(*root_inode, "s")).value(), "target/of/link");
  EXPECT_EQ(img.read_link(lookup(*root_inode, "long")).value(), std::string(4000, 'l'));
  const erofs::Inode c = lookup(*root_inode, "c");
  EXPECT_EQ(major(c.rdev), 4U);
  EXPECT_EQ(minor(c.rdev), 300U);
  EXPECT_TRUE(S_ISFIFO(lookup(*root_inode, "fifo").mode));
  const erofs::Inode many = lookup(*root_inode, "many");
  EXPECT_GT(many.size, 4096U) << "600 entries need several dirent blocks";
  size_t seen = 0;
  ASSERT_TRUE(img.read_dir(many, 0, [&](const erofs::DirEntry&) { return ++seen, true; }).ok());
  EXPECT_EQ(seen, 602U);
  for (int i = 0; i < 600; i += 37) EXPECT_EQ(lookup(many, "n" + std::to_string(i)).mode, S_IFREG | 0644U);
}

// Sizes past 4 GiB need the extended inode's 64-bit size and many chunk indexes.
TEST(BootstrapWriter, FilesLargerThanFourGiB) {
  Tree t;
  auto f = node(S_IFREG | 0644);
  f->size = (5ULL << 30U) + 7;
  f->chunks.resize(5 * 1024 + 1);  // 1 MiB chunks, all holes...
  f->chunks.back() = {1, 0};       // ...but the 7-byte tail
  ASSERT_TRUE(t.add(p("huge"), f, 0).ok());
  const std::string blob = "seven!!" + std::string(4096 - 7, '\0');
  BootstrapSpec spec;
  spec.root = &t.root();
  spec.devices = {{std::string(64, 'a'), 1}};
  auto boot = write_bootstrap(spec);
  ASSERT_TRUE(boot.ok()) << boot.error().message;
  auto image = erofs::ErofsImage::open(
      std::make_shared<MemorySource>(boot->bytes, "bootstrap"),
      [&](const erofs::DeviceSlot&) -> Result<std::shared_ptr<const ByteSource>> {
        return std::shared_ptr<const ByteSource>(std::make_shared<MemorySource>(bytes_of(blob), "blob"));
      });
  ASSERT_TRUE(image.ok()) << image.error().message;
  auto root = (*image)->inode((*image)->superblock().root_nid).value();
  auto huge = (*image)->inode((*image)->lookup(root, "huge").value()).value();
  EXPECT_EQ(huge.size, (5ULL << 30U) + 7);
  std::string tail(16, '?');
  auto n =
      (*image)->read(huge, (5ULL << 30U) - 9, std::as_writable_bytes(std::span(tail.data(), tail.size())));
  ASSERT_TRUE(n.ok()) << n.error().message;
  EXPECT_EQ(*n, 16U);
  EXPECT_EQ(tail, std::string(9, '\0') + "seven!!");
}

TEST(BootstrapWriter, RefusesXattrsEroFsCannotName) {
  Tree t;
  auto f = node(S_IFREG | 0644);
  f->xattrs = {{"os2.weird", "x"}};
  ASSERT_TRUE(t.add(p("f"), f, 0).ok());
  BootstrapSpec spec;
  spec.root = &t.root();
  auto boot = write_bootstrap(spec);
  ASSERT_FALSE(boot.ok());
  EXPECT_NE(boot.error().message.find("os2.weird"), std::string::npos);
}

}  // namespace
}  // namespace ferry::builder
