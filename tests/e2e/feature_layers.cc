// The multi-layer image of the e2e tests of ferry-image and of ferryd serving its output.
#include "e2e/feature_layers.h"

#include <cstring>
#include <fstream>
#include <stdexcept>

namespace ferry::e2e {

using Kind = TarEntry::Kind;

namespace {

TarEntry with(TarEntry e, uint32_t uid, uint32_t gid, int64_t mtime, long nsec) {
  e.uid = uid;
  e.gid = gid;
  e.mtime = mtime;
  e.mtime_nsec = nsec;
  return e;
}

TarEntry device(Kind kind, std::string path, unsigned major, unsigned minor) {
  TarEntry e;
  e.kind = kind;
  e.path = std::move(path);
  e.major = major;
  e.minor = minor;
  e.mode = kind == Kind::kFifo ? 0644 : 0660;
  return e;
}

// security.capability v2: cap_net_bind_service permitted + effective.
std::string file_caps() {
  std::string v(20, '\0');
  const uint32_t words[5] = {0x02000001U, 1U << 10U, 0, 0, 0};
  std::memcpy(v.data(), words, sizeof words);
  return v;
}

// The layers of the main image, lowest first.
}  // namespace

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::vector<std::vector<TarEntry>> feature_layers() {
  const std::string big = random_bytes((5U << 20U) + 123, 1);
  const std::string block = random_bytes(1U << 20U, 2);
  std::vector<TarEntry> l1;
  l1.push_back(with(dir("./"), 0, 0, 1500000000, 1));
  l1.push_back(dir("etc/"));
  l1.push_back(with(file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), 0, 0, 1600000001, 999999999));
  l1.push_back(dir("bin/"));
  TarEntry tool = file("bin/tool", random_bytes(70000, 3), 04755);
  tool.xattrs = {{"security.capability", file_caps()}};
  l1.push_back(tool);
  TarEntry sgid = file("bin/sgid", "g", 02711);
  l1.push_back(sgid);
  l1.push_back(dir("tmp/", 01777));
  TarEntry data = dir("data/", 0750);
  data.xattrs = {{"user.dir", "on a directory"}};
  l1.push_back(data);
  l1.push_back(file("data/empty", ""));
  l1.push_back(file("data/big", big));
  l1.push_back(file("data/repeat", block + block + block + "tail"));
  TarEntry sparse = file("data/sparse", random_bytes(10000, 4));
  sparse.sparse_offsets = {0, 5U << 20U};
  sparse.sparse_size = 8U << 20U;
  l1.push_back(sparse);
  l1.push_back(with(file("data/owned", "owned by 1000:2000"), 1000, 2000, 1234567890, 123456789));
  TarEntry x = file("data/x", "xattrs");
  x.xattrs = {{"user.a", "1"}, {"trusted.t", std::string("bin\0ary", 7)}, {"user.empty", ""}};
  l1.push_back(x);
  l1.push_back(dir("links/"));
  l1.push_back(symlink("links/sym", "../etc/passwd"));
  l1.push_back(symlink("links/long", "/" + std::string(300, 't') + "/target"));
  l1.push_back(symlink("links/dangling", "nowhere"));
  l1.push_back(file("links/h1", "hard linked content"));
  l1.push_back(hardlink("links/h2", "links/h1"));
  l1.push_back(hardlink("links/h3", "links/h1"));
  l1.push_back(dir("dev/"));
  l1.push_back(device(Kind::kChar, "dev/null", 1, 3));
  l1.push_back(device(Kind::kBlock, "dev/loopx", 7, 300));
  l1.push_back(device(Kind::kFifo, "dev/fifo", 0, 0));
  const std::string c1(150, 'a');
  const std::string c2(200, 'b');
  l1.push_back(dir("deep/"));
  l1.push_back(dir("deep/" + c1 + "/"));
  l1.push_back(dir("deep/" + c1 + "/" + c2 + "/"));
  l1.push_back(file("deep/" + c1 + "/" + c2 + "/file-with-a-long-path", "deep"));
  l1.push_back(hardlink("deep/" + c1 + "/" + c2 + "/hard-with-a-long-target",
                        "deep/" + c1 + "/" + c2 + "/file-with-a-long-path"));
  l1.push_back(dir("unicode/"));
  l1.push_back(file("unicode/\u00fcn\u00efc\u00f6d\u00e9-\u540d\u524d.txt", "non-ascii"));
  l1.push_back(file("gone", "whited out later"));
  l1.push_back(dir("w/"));
  l1.push_back(file("w/a", "a"));
  l1.push_back(dir("w/sub/"));
  l1.push_back(file("w/sub/c", "c"));
  l1.push_back(dir("dtof/"));
  l1.push_back(file("dtof/child", "child"));
  l1.push_back(file("ftod", "file, later a directory"));
  l1.push_back(dir("usr/"));
  l1.push_back(dir("usr/lib/"));
  l1.push_back(symlink("lib", "usr/lib"));  // usrmerge: a later layer writes through it
  l1.push_back(dir("redo/"));
  l1.push_back(file("redo/old", "whited out, then the name is used again in the same layer"));
  // Many entries in one directory: its dirents span several blocks.
  l1.push_back(dir("many/"));
  for (int i = 0; i < 400; ++i)
    l1.push_back(file("many/entry-number-" + std::to_string(i), std::to_string(i)));

  std::vector<TarEntry> l2;
  l2.push_back(whiteout("gone"));
  l2.push_back(dir("w/", 0700));
  l2.push_back(opaque("w"));
  l2.push_back(file("w/new", "new in layer 2"));
  l2.push_back(whiteout("links/h2"));
  l2.push_back(file("dtof", "now a file"));
  l2.push_back(dir("ftod/"));
  l2.push_back(file("ftod/in", "inside"));
  l2.push_back(file("data/dup", big));                  // every chunk already stored by layer 1
  l2.push_back(hardlink("data/big-link", "data/big"));  // a link to a lower layer's file
  l2.push_back(file("lib/through-a-symlink", "lands in usr/lib"));
  l2.push_back(whiteout("redo"));
  l2.push_back(file("redo", "a file now"));
  l2.push_back(with(file("etc/passwd", "root:x:0:0::/root:/bin/bash\n"), 0, 0, 1700000000, 5));

  std::vector<TarEntry> l3;
  l3.push_back(dir("dtof/"));
  l3.push_back(file("dtof/again", "a directory again"));

  std::vector<TarEntry> l4;  // adds no data: no blob
  l4.push_back(whiteout("data/owned"));
  l4.push_back(dir("emptydir/", 0711));

  return {l1, l2, l3, l4};
}

}  // namespace ferry::e2e
