// Test layers made at test time: tar archives written with libarchive's PAX writer from entries
// described in code (every kind of entry an OCI layer carries: whiteouts, hard links, devices,
// sparse files, xattrs, ns mtimes, long and non-ASCII names), optionally gzip or zstd
// compressed, and OCI image layouts holding them (for umoci). Throws std::runtime_error.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ferry::e2e {

struct TarEntry {
  enum class Kind { kFile, kDir, kSymlink, kHardlink, kChar, kBlock, kFifo };
  Kind kind = Kind::kFile;
  std::string path;
  unsigned mode = 0644;  // permission bits incl. setuid/setgid/sticky
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime = 1600000000;
  long mtime_nsec = 0;
  std::string data;  // kFile
  // kFile, sparse: the file is `sparse_size` bytes of zeros except `data` at each offset.
  std::vector<uint64_t> sparse_offsets;
  uint64_t sparse_size = 0;
  std::string link;  // kSymlink target, kHardlink target path
  unsigned major = 0, minor = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

TarEntry file(std::string path, std::string data, unsigned mode = 0644);
TarEntry dir(std::string path, unsigned mode = 0755);
TarEntry symlink(std::string path, std::string target);
TarEntry hardlink(std::string path, std::string target);
TarEntry whiteout(const std::string& path);    // DIR/.wh.NAME for path DIR/NAME
TarEntry opaque(const std::string& dir_path);  // DIR/.wh..wh..opq

enum class TarCompression { kNone, kGzip, kZstd };

// The archive's bytes.
std::string make_tar(const std::vector<TarEntry>& entries,
                     TarCompression compression = TarCompression::kNone);

// `n` bytes of deterministic pseudo-random data from `seed`.
std::string random_bytes(size_t n, uint64_t seed);

// An OCI image layout at `dir` (oci-layout, index.json tagged `tag`, manifest, config, blobs)
// whose layers are the given gzip'd tars, lowest first.
void write_oci_layout(const std::string& dir, const std::string& tag,
                      const std::vector<std::string>& gzip_layers,
                      const std::vector<std::string>& uncompressed_layers);

// sha256 hex of bytes.
std::string sha256_hex(const std::string& bytes);

// The OCI chain id ("sha256:...") of the layers given uncompressed, lowest first: the name
// containerd gives the committed snapshot of the top one.
std::string chain_id(const std::vector<std::string>& uncompressed_layers);

}  // namespace ferry::e2e
