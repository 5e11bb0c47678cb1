// libFuzzer target for the tar-to-EROFS path (src/builder): a layer's bytes (tar, gzip or zstd,
// all untrusted) applied to a Tree whose chunks go to a BlobStore, then the bootstrap written
// and opened again with Ferry's EROFS reader, which must accept what the writer made. Any
// input may be refused with an error; none may crash, hang or make the writer produce an image
// the reader rejects.
// Run: build-fuzz/bin/layer_fuzz -max_total_time=60 CORPUS_DIR SEEDS (seeds: fuzz/make_layer_seeds.sh)
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <span>
#include <string>

#include "builder/blob_store.h"
#include "builder/erofs_writer.h"
#include "builder/layer_reader.h"
#include "builder/tree.h"
#include "common/memory_source.h"
#include "erofs/erofs_image.h"

namespace {

using namespace ferry;

const std::string& blob_dir() {
  static const std::string dir = [] {
    std::string t = "/tmp/ferry-layer-fuzz-XXXXXX";
    if (::mkdtemp(t.data()) == nullptr) std::abort();
    // Blobs are never committed, so their temporaries are gone by then: the directory is empty.
    std::atexit([] { ::rmdir(blob_dir().c_str()); });
    return t;
  }();
  return dir;
}

void walk(const erofs::ErofsImage& image, uint64_t nid, int depth, size_t& budget) {
  if (depth > 16 || budget == 0) return;
  --budget;
  auto inode = image.inode(nid);
  if (!inode.ok()) __builtin_trap();  // the writer made an inode the reader refuses
  if (!S_ISDIR(inode->mode)) return;
  std::vector<uint64_t> children;
  auto s = image.read_dir(*inode, 0, [&](const erofs::DirEntry& e) {
    if (e.name != "." && e.name != "..") children.push_back(e.nid);
    return true;
  });
  if (!s.ok()) __builtin_trap();
  for (uint64_t child : children) walk(image, child, depth + 1, budget);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  builder::LayerSource source;
  source.name = "fuzz layer";
  source.bytes = std::as_bytes(std::span<const uint8_t>(data, size));
  source.max_file_bytes = 16U << 20U;
  builder::Tree tree;
  builder::BlobStore blobs(blob_dir(), erofs::Compression::kNone, 4096);
  if (!builder::apply_layer(source, 0, tree, blobs).ok()) return 0;
  builder::BootstrapSpec spec;
  spec.root = &tree.root();
  spec.chunk_size = 4096;
  for (const auto& b : blobs.blobs()) {
    spec.devices.push_back(
        {erofs::digest_hex(b.info.digest), static_cast<uint32_t>(b.info.device_size / 4096)});
  }
  auto boot = builder::write_bootstrap(spec);
  if (!boot.ok()) return 0;  // e.g. an xattr EROFS cannot hold: refused, fine
  auto meta = std::make_shared<MemorySource>(boot->bytes, "fuzz bootstrap");
  auto image = erofs::ErofsImage::open(
      meta, [](const erofs::DeviceSlot& slot) -> Result<std::shared_ptr<const ByteSource>> {
        static const std::vector<std::byte> empty;
        (void)slot;
        return std::shared_ptr<const ByteSource>(std::make_shared<MemorySource>(empty, "blob"));
      });
  if (!image.ok()) __builtin_trap();  // the reader refuses what the writer made
  size_t budget = 4096;
  walk(**image, (*image)->superblock().root_nid, 0, budget);
  return 0;
}
