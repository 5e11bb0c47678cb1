#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "storage/chunk_codec.h"
#include "storage/local_file.h"
#include "tools/ferry-image/bootstrap_view.h"
#include "tools/ferry-image/command.h"

namespace ferry::image_tool {
namespace {

// Verifies one blob: its size and sha256, then every chunk (decompressed, digest compared).
Status check_blob(const erofs::BlobInfo& blob, std::span<const erofs::ChunkInfo> chunks,
                  const std::string& dir, uint64_t& verified) {
  const std::string hex = erofs::digest_hex(blob.digest);
  const std::string path = dir + "/" + hex;
  FERRY_ASSIGN(auto file, storage::LocalFile::open(path, /*map=*/false));
  if (file->size() != blob.blob_size) {
    return Error{EIO, "blob " + hex + " is " + std::to_string(file->size()) +
                          " bytes, the chunk table says " + std::to_string(blob.blob_size)};
  }
  storage::Sha256 whole;
  std::vector<std::byte> buf(1U << 20U);
  for (uint64_t off = 0; off < file->size();) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), file->size() - off));
    FERRY_TRY(file->read_exact(off, std::span<std::byte>(buf).first(n)));
    whole.update(std::span<const std::byte>(buf).first(n));
    off += n;
  }
  if (whole.finish() != blob.digest)
    return Error{EIO, "blob " + hex + ": its sha256 does not match its name"};
  std::vector<std::byte> stored;
  std::vector<std::byte> plain;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const auto& c = chunks[i];
    const std::string what = "blob " + hex + " chunk " + std::to_string(i) + " (device offset " +
                             std::to_string(c.device_offset) + ")";
    stored.resize(c.stored_size);
    plain.resize(c.size);
    FERRY_TRY(file->read_exact(c.blob_offset, stored));
    auto s = storage::decompress_chunk(c.compression, stored, plain);
    if (!s.ok()) return std::move(s).error().context(what);
    if (storage::sha256(plain) != c.digest) return Error{EIO, what + ": sha256 mismatch"};
    ++verified;
  }
  return {};
}

}  // namespace

Command add_check_command(CLI::App& parent) {
  struct Options {
    std::string bootstrap;
    std::string blob_dir;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand(
      "check",
      "Verify a Ferry image: the bootstrap's EROFS superblock and chunk table, that every file's\n"
      "chunks start chunks of the table, then every blob in BLOB_DIR (size, sha256 of the file)\n"
      "and every chunk (decompressed, sha256 compared).\n"
      "Prints one line per blob and a summary; exit status 1 at the first problem.");
  app->add_option("BOOTSTRAP", opts->bootstrap, "the bootstrap file")->required();
  app->add_option("--blob-dir", opts->blob_dir, "the directory holding the blobs as <sha256 hex>")
      ->required()
      ->type_name("DIR");
  return {app, [opts] {
            auto fail = [](const Error& e) {
              std::fprintf(stderr, "ferry-image: error: %s\n", e.message.c_str());
              return 1;
            };
            auto view = open_bootstrap(opts->bootstrap);
            if (!view.ok()) return fail(view.error());
            if (!view->table)
              return fail(Error{EINVAL, "'" + opts->bootstrap + "' has no Ferry chunk table"});
            // Every file's chunks must start chunks of the table, before any blob is read.
            auto refs = count_references(*view->image, *view->table);
            if (!refs.ok()) return fail(refs.error());
            uint64_t verified = 0;
            for (const auto& b : view->table->blobs) {
              auto s = check_blob(b, view->table->chunks_of(b.device_id), opts->blob_dir, verified);
              if (!s.ok()) return fail(s.error());
              std::printf("ok sha256:%s (%u chunks)\n", erofs::digest_hex(b.digest).c_str(), b.chunk_count);
            }
            std::printf("%zu blobs, %llu chunks verified; %llu files reference %llu chunks\n",
                        view->table->blobs.size(), static_cast<unsigned long long>(verified),
                        static_cast<unsigned long long>(refs->files),
                        static_cast<unsigned long long>(refs->refs));
            return 0;
          }};
}

}  // namespace ferry::image_tool
