// libFuzzer target for ChunkedBlobSource (src/storage/chunked_blob_source.h): the stored bytes of
// a blob are untrusted (a damaged disk, later a registry). Each input is cut into chunks that are
// compressed (zstd, lz4 or stored as is, chosen by the input) into a blob described by a valid
// table, then the input's tail flips bytes of the stored blob. Reads of the whole device and of
// ranges across chunks must either fail or return exactly the original bytes: a wrong byte
// served, a crash or a sanitizer report is a bug.
// Run: build-fuzz/bin/chunked_blob_fuzz -max_total_time=60 CORPUS_DIR
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "kit/memory_source.h"
#include "kit/memory_blob.h"
#include "storage/chunked_blob_source.h"

namespace {

using namespace ferry;
using erofs::Compression;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const uint32_t chunk_size = 4096U << (data[0] % 3U);
  const auto algorithm = static_cast<Compression>(data[1] % 3U);
  const size_t flips = data[2] % 8U;
  const size_t payload_size = size - 3 - std::min(size - 3, flips * 3);
  const auto payload = std::as_bytes(std::span<const uint8_t>(data + 3, payload_size));
  const uint8_t* flip = data + 3 + payload_size;

  std::vector<std::span<const std::byte>> chunks;
  for (size_t at = 0; at < payload.size(); at += chunk_size)
    chunks.push_back(payload.subspan(at, std::min<size_t>(chunk_size, payload.size() - at)));
  testkit::MemoryBlob blob = testkit::make_memory_blob(chunks, algorithm, chunk_size);
  const auto& table = blob.table;
  const auto& device = blob.device;
  auto& stored = blob.stored;
  for (size_t i = 0; i < flips && !stored.empty(); ++i) {
    const size_t pos = (size_t{flip[3 * i]} << 8U | flip[3 * i + 1]) % stored.size();
    stored[pos] ^= std::byte{flip[3 * i + 2]};
  }

  auto file = std::make_shared<ferry::testkit::MemorySource>(std::span<const std::byte>(stored), "fuzz blob", false);
  auto source = storage::ChunkedBlobSource::open(table, 1, std::make_shared<storage::BlobFileReader>(file),
                                                 {.cache_slots = 2});
  if (!source.ok()) __builtin_trap();
  std::vector<std::byte> got(device.size());
  auto check = [&](uint64_t off, size_t n) {
    if (n == 0 || off > device.size() || n > device.size() - off) return;
    if ((*source)->read_exact(off, std::span(got).first(n)).ok() &&
        std::memcmp(got.data(), device.data() + off, n) != 0) {
      __builtin_trap();  // wrong bytes served
    }
  };
  check(0, device.size());
  for (uint64_t off = 0; off < device.size(); off += 3000) check(off, 5000);
  return 0;
}
