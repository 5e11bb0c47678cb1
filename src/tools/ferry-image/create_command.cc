#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "builder/builder.h"
#include "builder/prefetch_list.h"
#include "storage/chunk_codec.h"
#include "tools/ferry-image/command.h"

namespace ferry::image_tool {
namespace {

nlohmann::json summary_json(const builder::BuildSummary& s) {
  nlohmann::json blobs = nlohmann::json::array();
  for (const auto& b : s.blobs) {
    blobs.push_back({{"digest", "sha256:" + erofs::digest_hex(b.info.digest)},
                     {"path", b.path},
                     {"size", b.info.blob_size},
                     {"uncompressed_size", b.info.device_size},
                     {"chunks", b.info.chunk_count},
                     {"layer", b.layer + 1}});
  }
  const auto& st = s.stats;
  return {{"bootstrap", s.bootstrap},
          {"bootstrap_size", s.bootstrap_size},
          {"compressor", std::string(storage::compression_name(s.compressor))},
          {"chunk_size", s.chunk_size},
          {"prefetch_chunks", s.prefetch_chunks},
          {"inodes", s.inodes},
          {"entries", s.entries},
          {"file_bytes", s.file_bytes},
          {"blobs", blobs},
          {"chunks",
           {{"referenced", st.chunk_refs},
            {"stored", st.chunks_stored},
            {"deduplicated", st.chunk_refs - st.chunks_stored},
            {"holes", st.holes}}},
          {"dedup_saved_bytes", st.bytes_deduplicated},
          {"stored_uncompressed_bytes", st.bytes_stored}};
}

}  // namespace

Command add_create_command(CLI::App& parent) {
  struct Options {
    std::string bootstrap;
    std::string blob_dir;
    std::string compressor = "zstd";
    uint32_t chunk_size = builder::kDefaultChunkSize;
    std::vector<std::string> layers;
    std::string prefetch_files;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand(
      "create",
      "Build a Ferry image from tar layers (tar, tar.gz or tar.zst, lowest first): the merged tree with\n"
      "whiteouts and opaque directories applied becomes the bootstrap, file data becomes one blob per\n"
      "layer that adds data (BLOB_DIR/<sha256 hex>). Prints a JSON summary on stdout. On any error\n"
      "(corrupt or truncated tar, a path escaping the root) nothing is written.");
  app->add_option("--bootstrap", opts->bootstrap, "where to write the bootstrap")
      ->required()
      ->type_name("FILE");
  app->add_option("--blob-dir", opts->blob_dir, "existing directory for the blobs")
      ->required()
      ->type_name("DIR");
  app->add_option("--compressor", opts->compressor,
                  "how each chunk is stored: zstd, lz4, or none (then every blob is the EROFS device\n"
                  "itself and the kernel mounts the bootstrap with -o device=)")
      ->check(CLI::IsMember({"zstd", "lz4", "none"}))
      ->capture_default_str();
  app->add_option("--chunk-size", opts->chunk_size, "chunk size in bytes: a power of two, 4096 .. 67108864")
      ->capture_default_str();
  app->add_option("--prefetch-files", opts->prefetch_files,
                  "a file listing paths of the image (one per line, '#' comments), files or\n"
                  "directories whose data ferryd fetches in the background, in this order, when\n"
                  "the daemon's config enables fs_prefetch")
      ->type_name("FILE");
  app->add_option("LAYER", opts->layers, "tar layers, lowest first")->required();
  return {app, [opts] {
            builder::BuildOptions b;
            b.bootstrap = opts->bootstrap;
            b.blob_dir = opts->blob_dir;
            b.chunk_size = opts->chunk_size;
            auto c = storage::parse_compression(opts->compressor);
            if (!c.ok()) {
              std::fprintf(stderr, "ferry-image: error: %s\n", c.error().message.c_str());
              return 2;
            }
            b.compressor = *c;
            for (const auto& l : opts->layers) b.layers.push_back({l, l, {}});
            if (!opts->prefetch_files.empty()) {
              auto paths = builder::read_prefetch_file(opts->prefetch_files);
              if (!paths.ok()) {
                std::fprintf(stderr, "ferry-image: error: %s\n", paths.error().message.c_str());
                return 2;
              }
              b.prefetch_paths = std::move(paths).value();
            }
            auto summary = builder::build_image(b);
            if (!summary.ok()) {
              std::fprintf(stderr, "ferry-image: error: %s\n", summary.error().message.c_str());
              return 1;
            }
            std::printf("%s\n", summary_json(*summary).dump(2).c_str());
            return 0;
          }};
}

}  // namespace ferry::image_tool
