#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "storage/chunk_codec.h"
#include "tools/ferry-image/bootstrap_view.h"
#include "tools/ferry-image/command.h"

namespace ferry::image_tool {
namespace {

std::string mode_string(uint16_t mode) {
  std::string s = "?---------";
  switch (mode & S_IFMT) {
    case S_IFREG:
      s[0] = '-';
      break;
    case S_IFDIR:
      s[0] = 'd';
      break;
    case S_IFLNK:
      s[0] = 'l';
      break;
    case S_IFCHR:
      s[0] = 'c';
      break;
    case S_IFBLK:
      s[0] = 'b';
      break;
    case S_IFIFO:
      s[0] = 'p';
      break;
    case S_IFSOCK:
      s[0] = 's';
      break;
    default:
      break;
  }
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) {
    if ((mode & (0400U >> i)) != 0) s[1 + i] = rwx[i];
  }
  if ((mode & S_ISUID) != 0) s[3] = (mode & S_IXUSR) != 0 ? 's' : 'S';
  if ((mode & S_ISGID) != 0) s[6] = (mode & S_IXGRP) != 0 ? 's' : 'S';
  if ((mode & S_ISVTX) != 0) s[9] = (mode & S_IXOTH) != 0 ? 't' : 'T';
  return s;
}

Status print_tree(const erofs::ErofsImage& image) {
  return walk_tree(image, [&](const std::string& path, const erofs::Inode& in) -> Status {
    std::string extra;
    if (S_ISLNK(in.mode)) {
      FERRY_ASSIGN(std::string target, image.read_link(in));
      extra = " -> " + target;
    }
    std::string size = std::to_string(in.size);
    if (S_ISCHR(in.mode) || S_ISBLK(in.mode))
      size = std::to_string(major(in.rdev)) + "," + std::to_string(minor(in.rdev));
    std::printf("%s %u %u:%u %s %s%s\n", mode_string(in.mode).c_str(), in.nlink, in.uid, in.gid, size.c_str(),
                path.c_str(), extra.c_str());
    return {};
  });
}

Status print_references(const erofs::ErofsImage& image, const erofs::ChunkTable& table) {
  FERRY_ASSIGN(ChunkReferences r, count_references(image, table));
  std::printf(
      "references: %llu chunks (%llu bytes) from %llu files, %llu holes; %llu chunks referenced, "
      "dedup saved %llu bytes\n",
      static_cast<unsigned long long>(r.refs), static_cast<unsigned long long>(r.ref_bytes),
      static_cast<unsigned long long>(r.files), static_cast<unsigned long long>(r.holes),
      static_cast<unsigned long long>(r.chunks_used), static_cast<unsigned long long>(r.dedup_saved));
  return {};
}

}  // namespace

Command add_inspect_command(CLI::App& parent) {
  struct Options {
    std::string bootstrap;
    bool tree = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* app = parent.add_subcommand(
      "inspect",
      "Show a bootstrap's blobs (device order = layer order), chunk statistics and, with --tree, its files\n"
      "(mode, nlink, uid:gid, size or major,minor, path, symlink target). Reads no blob.");
  app->add_option("BOOTSTRAP", opts->bootstrap, "the bootstrap file")->required();
  app->add_flag("--tree", opts->tree, "also list every file of the merged tree");
  return {app, [opts] {
            auto view = open_bootstrap(opts->bootstrap);
            if (!view.ok()) {
              std::fprintf(stderr, "ferry-image: error: %s\n", view.error().message.c_str());
              return 1;
            }
            const auto& sb = view->image->superblock();
            std::printf("bootstrap: %s (%llu bytes, %llu inodes, block size %u)\n", opts->bootstrap.c_str(),
                        static_cast<unsigned long long>(view->file->size()),
                        static_cast<unsigned long long>(sb.inodes), sb.block_size);
            if (!view->table) {
              std::printf("not a Ferry image: no chunk table (a plain EROFS image with %zu device(s))\n",
                          view->image->devices().size());
            } else {
              const auto& t = *view->table;
              uint64_t stored = 0, uncompressed = 0;
              std::printf("chunk size: %u\nblobs: %zu\n", t.chunk_size, t.blobs.size());
              for (const auto& b : t.blobs) {
                std::printf("  %u sha256:%s %llu bytes (uncompressed device %llu bytes), %u chunks, %s\n",
                            b.device_id, erofs::digest_hex(b.digest).c_str(),
                            static_cast<unsigned long long>(b.blob_size),
                            static_cast<unsigned long long>(b.device_size), b.chunk_count,
                            std::string(storage::compression_name(b.compressor)).c_str());
              }
              uint64_t compressed_chunks = 0;
              for (const auto& c : t.chunks) {
                stored += c.stored_size;
                uncompressed += c.size;
                if (c.compression != erofs::Compression::kNone) ++compressed_chunks;
              }
              std::printf(
                  "chunks: %zu unique (%llu bytes uncompressed, %llu stored, %llu compressed chunks)\n",
                  t.chunks.size(), static_cast<unsigned long long>(uncompressed),
                  static_cast<unsigned long long>(stored),
                  static_cast<unsigned long long>(compressed_chunks));
              uint64_t prefetch_chunks = 0;
              for (const auto& r : t.prefetch) prefetch_chunks += r.chunk_count;
              std::printf("prefetch list: %llu chunks in %zu ranges\n",
                          static_cast<unsigned long long>(prefetch_chunks), t.prefetch.size());
              auto s = print_references(*view->image, t);
              if (!s.ok()) {
                std::fprintf(stderr, "ferry-image: error: %s\n", s.error().message.c_str());
                return 1;
              }
            }
            if (opts->tree) {
              auto s = print_tree(*view->image);
              if (!s.ok()) {
                std::fprintf(stderr, "ferry-image: error: %s\n", s.error().message.c_str());
                return 1;
              }
            }
            return 0;
          }};
}

}  // namespace ferry::image_tool
