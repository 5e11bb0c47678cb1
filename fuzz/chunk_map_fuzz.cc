// libFuzzer target for the blob cache's chunk map (src/storage/chunk_map.h, blob_cache_file.h):
// the bytes of `<blobhex>.blob.chunk_map.v1` on disk are untrusted (another daemon's crash, a
// damaged disk, someone's copy). Each input makes a map file (the input itself, or a valid map it
// damages: see map_of) that is checked twice: against the identity its own header names (so the
// accepting path runs for any identity), and, written to a file, opened by BlobCacheFile for a
// small fixed blob, which must either keep it (then its present records are the file's) or
// replace it with an empty, valid map. A crash, a sanitizer report, an accepted map
// whose header is not the one encode_chunk_map_header() writes, or an open that fails is a bug.
// Run: build-fuzz/bin/chunk_map_fuzz -max_total_time=60 CORPUS_DIR (no seeds needed).
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "common/le.h"
#include "common/unique_fd.h"
#include "storage/blob_cache_file.h"
#include "storage/chunk_map.h"

namespace {

using namespace ferry;
using namespace ferry::storage;

constexpr size_t kCrcAt = 64;
constexpr uint32_t kFileChunks = 16;

std::string g_dir;

ChunkMapIdentity identity_of(std::span<const std::byte> in) {
  ChunkMapIdentity id;
  if (in.size() >= kCrcAt) {
    id.chunk_count = load_le<uint32_t>(in.data() + 20);
    id.chunk_size = load_le<uint32_t>(in.data() + 24);
    std::memcpy(id.blob.data(), in.data() + 32, id.blob.size());
  }
  return id;
}

uint64_t present_records(std::span<const std::byte> file, uint64_t count) {
  uint64_t n = 0;
  for (uint64_t i = 0; i < count && chunk_record_offset(i) + kChunkMapRecordSize <= file.size(); ++i) {
    const auto r = file.subspan(chunk_record_offset(i)).first<kChunkMapRecordSize>();
    const ChunkRecord rec = decode_chunk_record(r);
    const auto again = encode_chunk_record(rec);
    const ChunkRecord twice = decode_chunk_record(again);
    if (twice.present != rec.present || twice.crc != rec.crc) __builtin_trap();
    n += rec.present ? 1 : 0;
  }
  return n;
}

void check_bytes(std::span<const std::byte> in) {
  const ChunkMapIdentity id = identity_of(in);
  const std::span<const std::byte> header = in.first(std::min<size_t>(in.size(), kChunkMapHeaderSize));
  if (!check_chunk_map(header, in.size(), id).ok()) return;
  // Accepted: the header is exactly what this version writes for that identity.
  const std::vector<std::byte> written = encode_chunk_map_header(id);
  if (in.size() != chunk_map_size(id.chunk_count) || std::memcmp(written.data(), in.data(), kCrcAt + 4) != 0) {
    __builtin_trap();
  }
  (void)present_records(in, id.chunk_count);
}

void check_file(std::span<const std::byte> in, const erofs::Digest& digest) {
  erofs::BlobInfo blob;
  blob.digest = digest;
  blob.chunk_count = kFileChunks;
  blob.device_size = uint64_t{kFileChunks} * 4096;
  const std::string map = g_dir + "/" + chunk_map_file_name(blob.digest);
  {
    UniqueFd fd(::open(map.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd || (!in.empty() && ::write(fd.get(), in.data(), in.size()) != static_cast<ssize_t>(in.size()))) abort();
  }
  auto file = BlobCacheFile::open(g_dir, blob, 4096);
  if (!file.ok()) __builtin_trap();  // an unusable map is replaced, never an error
  const ChunkMapIdentity want{.blob = blob.digest, .chunk_count = kFileChunks, .chunk_size = 4096};
  const bool valid = check_chunk_map(in.first(std::min<size_t>(in.size(), kChunkMapHeaderSize)), in.size(), want).ok();
  if (valid == (*file)->map_rebuilt()) __builtin_trap();
  if (valid && (*file)->present_at_open() != present_records(in, kFileChunks)) __builtin_trap();
  if (!valid && (*file)->present_at_open() != 0) __builtin_trap();
  std::filesystem::remove(map);
  std::filesystem::remove(g_dir + "/" + blob_data_file_name(blob.digest));
}

// A map file built from the input: byte 0 picks the mode. Odd: the input is the file. Even: a
// valid map of our blob (kFileChunks records, taken from the input), then flips (3 bytes each:
// position, xor) and a cut to a length the input names, with the header checksum made right when
// byte 0 says so, so that both accepted and nearly-valid maps are tried from the start.
std::vector<std::byte> map_of(std::span<const std::byte> in, const erofs::Digest& blob) {
  const auto mode = static_cast<uint8_t>(in[0]);
  in = in.subspan(1);
  if ((mode & 1U) != 0) return {in.begin(), in.end()};
  std::vector<std::byte> file =
      encode_chunk_map_header({.blob = blob, .chunk_count = kFileChunks, .chunk_size = 4096});
  file.resize(chunk_map_size(kFileChunks));
  const size_t records = std::min<size_t>(in.size(), kFileChunks * kChunkMapRecordSize);
  std::memcpy(file.data() + chunk_record_offset(0), in.data(), records);
  in = in.subspan(records);
  if ((mode & 2U) != 0 && !in.empty()) {  // a cut
    file.resize(std::min<size_t>(file.size(), static_cast<size_t>(in[0]) * 37));
    in = in.subspan(1);
  }
  for (; in.size() >= 3 && !file.empty(); in = in.subspan(3)) {
    const size_t pos = (static_cast<size_t>(in[0]) << 8U | static_cast<size_t>(in[1])) % file.size();
    file[pos] ^= in[2];
  }
  if ((mode & 4U) != 0 && file.size() >= kCrcAt + 4) {
    const uint32_t crc = crc32c_update(0, std::span(file).first(kCrcAt));
    std::memcpy(file.data() + kCrcAt, &crc, sizeof crc);
  }
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  spdlog::set_level(spdlog::level::off);  // every replaced map would warn
  // tmpfs where there is one: a replaced map is synced, which a disk makes slow.
  const std::filesystem::path base =
      std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
  std::string tmpl = (base / "chunk-map-fuzz-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) abort();
  g_dir = tmpl;
  std::atexit([] { std::filesystem::remove_all(g_dir); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  erofs::Digest blob{};
  blob.fill(0xAB);
  const std::vector<std::byte> file = map_of(std::as_bytes(std::span<const uint8_t>(data, size)), blob);
  check_bytes(file);
  check_file(file, blob);
  return 0;
}
