#include "e2e/tar_writer.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <clocale>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "storage/chunk_codec.h"

namespace ferry::e2e {
namespace {

void check(int r, archive* a, const std::string& what) {
  if (r < ARCHIVE_OK)
    throw std::runtime_error(what + ": " + (archive_error_string(a) ? archive_error_string(a) : "?"));
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace

TarEntry file(std::string path, std::string data, unsigned mode) {
  TarEntry e;
  e.path = std::move(path);
  e.data = std::move(data);
  e.mode = mode;
  return e;
}

TarEntry dir(std::string path, unsigned mode) {
  TarEntry e;
  e.kind = TarEntry::Kind::kDir;
  e.path = std::move(path);
  e.mode = mode;
  return e;
}

TarEntry symlink(std::string path, std::string target) {
  TarEntry e;
  e.kind = TarEntry::Kind::kSymlink;
  e.path = std::move(path);
  e.link = std::move(target);
  e.mode = 0777;
  return e;
}

TarEntry hardlink(std::string path, std::string target) {
  TarEntry e;
  e.kind = TarEntry::Kind::kHardlink;
  e.path = std::move(path);
  e.link = std::move(target);
  return e;
}

TarEntry whiteout(const std::string& path) {
  const auto slash = path.rfind('/');
  const std::string parent = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  return file(parent + ".wh." + name, "");
}

TarEntry opaque(const std::string& dir_path) {
  return file(dir_path + "/.wh..wh..opq", "");
}

std::string make_tar(const std::vector<TarEntry>& entries, TarCompression compression) {
  // PAX names are written as UTF-8 converted from the locale: make the locale UTF-8.
  std::setlocale(LC_CTYPE, "C.UTF-8");
  std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(), archive_write_free);
  check(archive_write_set_format_pax(a.get()), a.get(), "pax");
  if (compression == TarCompression::kGzip) check(archive_write_add_filter_gzip(a.get()), a.get(), "gzip");
  if (compression == TarCompression::kZstd) check(archive_write_add_filter_zstd(a.get()), a.get(), "zstd");
  archive_write_set_bytes_in_last_block(a.get(), 1);
  std::string out;
  check(archive_write_open(
            a.get(), &out, nullptr,
            [](archive*, void* client, const void* buf, size_t n) -> la_ssize_t {
              static_cast<std::string*>(client)->append(static_cast<const char*>(buf), n);
              return static_cast<la_ssize_t>(n);
            },
            nullptr),
        a.get(), "open");
  for (const TarEntry& t : entries) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), t.path.c_str());
    archive_entry_set_perm(e.get(), t.mode);
    archive_entry_set_uid(e.get(), t.uid);
    archive_entry_set_gid(e.get(), t.gid);
    archive_entry_set_mtime(e.get(), t.mtime, t.mtime_nsec);
    for (const auto& [k, v] : t.xattrs) archive_entry_xattr_add_entry(e.get(), k.c_str(), v.data(), v.size());
    std::string body;
    switch (t.kind) {
      case TarEntry::Kind::kFile:
        archive_entry_set_filetype(e.get(), AE_IFREG);
        if (t.sparse_offsets.empty()) {
          body = t.data;
          archive_entry_set_size(e.get(), static_cast<la_int64_t>(body.size()));
        } else {
          // libarchive's writer takes the whole logical content and stores only the listed
          // regions (GNU sparse 1.0 in PAX).
          body.assign(t.sparse_size, '\0');
          for (uint64_t off : t.sparse_offsets) {
            body.replace(off, t.data.size(), t.data);
            archive_entry_sparse_add_entry(e.get(), static_cast<la_int64_t>(off),
                                           static_cast<la_int64_t>(t.data.size()));
          }
          archive_entry_set_size(e.get(), static_cast<la_int64_t>(t.sparse_size));
        }
        break;
      case TarEntry::Kind::kDir:
        archive_entry_set_filetype(e.get(), AE_IFDIR);
        break;
      case TarEntry::Kind::kSymlink:
        archive_entry_set_filetype(e.get(), AE_IFLNK);
        archive_entry_set_symlink(e.get(), t.link.c_str());
        break;
      case TarEntry::Kind::kHardlink:
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_hardlink(e.get(), t.link.c_str());
        archive_entry_set_size(e.get(), 0);
        break;
      case TarEntry::Kind::kChar:
      case TarEntry::Kind::kBlock:
        archive_entry_set_filetype(e.get(), t.kind == TarEntry::Kind::kChar ? AE_IFCHR : AE_IFBLK);
        archive_entry_set_rdevmajor(e.get(), t.major);
        archive_entry_set_rdevminor(e.get(), t.minor);
        break;
      case TarEntry::Kind::kFifo:
        archive_entry_set_filetype(e.get(), AE_IFIFO);
        break;
    }
    check(archive_write_header(a.get(), e.get()), a.get(), "header of " + t.path);
    if (!body.empty()) {
      la_ssize_t n = archive_write_data(a.get(), body.data(), body.size());
      if (n < 0) check(static_cast<int>(n), a.get(), "data of " + t.path);
    }
  }
  check(archive_write_close(a.get()), a.get(), "close");
  return out;
}

std::string random_bytes(size_t n, uint64_t seed) {
  std::string out(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13U;
    x ^= x >> 7U;
    x ^= x << 17U;
    out[i] = static_cast<char>(x >> 56U);
  }
  return out;
}

std::string sha256_hex(const std::string& bytes) {
  auto d = storage::sha256(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())));
  return erofs::digest_hex(d);
}

std::string chain_id(const std::vector<std::string>& uncompressed_layers) {
  std::string chain;
  for (const std::string& layer : uncompressed_layers) {
    const std::string diff_id = "sha256:" + sha256_hex(layer);
    chain = chain.empty() ? diff_id : "sha256:" + sha256_hex(chain + " " + diff_id);
  }
  return chain;
}

void write_oci_layout(const std::string& dir, const std::string& tag,
                      const std::vector<std::string>& gzip_layers,
                      const std::vector<std::string>& uncompressed_layers) {
  namespace fs = std::filesystem;
  const std::string blobs = dir + "/blobs/sha256";
  fs::create_directories(blobs);
  write_file(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  auto put = [&](const std::string& bytes) {
    const std::string hex = sha256_hex(bytes);
    write_file(blobs + "/" + hex, bytes);
    return "sha256:" + hex;
  };
  std::string diff_ids;
  std::string layers;
  for (size_t i = 0; i < gzip_layers.size(); ++i) {
    if (i > 0) {
      diff_ids += ",";
      layers += ",";
    }
    diff_ids += "\"sha256:" + sha256_hex(uncompressed_layers[i]) + "\"";
    layers += R"({"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
              put(gzip_layers[i]) + R"(","size":)" + std::to_string(gzip_layers[i].size()) + "}";
  }
  const std::string config =
      R"({"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[)" +
      diff_ids + "]}}";
  const std::string manifest =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
      put(config) + R"(","size":)" + std::to_string(config.size()) + R"(},"layers":[)" + layers + "]}";
  const std::string index =
      R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
      put(manifest) + R"(","size":)" + std::to_string(manifest.size()) +
      R"(,"annotations":{"org.opencontainers.image.ref.name":")" + tag + R"("}}]})";
  write_file(dir + "/index.json", index);
}

}  // namespace ferry::e2e
