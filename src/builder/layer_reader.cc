#include "builder/layer_reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <memory>
#include <vector>

#include "builder/erofs_writer.h"
#include "builder/layer_stream.h"

namespace ferry::builder {
namespace {

struct ArchiveCloser {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveCloser>;

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr std::string_view kWhiteoutMeta = ".wh..wh.";

class LayerReader {
 public:
  LayerReader(const LayerSource& source, uint32_t layer, Tree& tree, BlobStore& blobs)
      : source_(source), layer_(layer), tree_(tree), blobs_(blobs), buffer_(blobs.chunk_size()) {}

  Result<LayerStats> run();

 private:
  [[nodiscard]] Error fail(const std::string& entry, const std::string& what) const {
    std::string where = "layer " + std::to_string(layer_ + 1) + " (" + source_.name + ")";
    if (!entry.empty()) where += ": entry '" + entry + "'";
    return Error{EINVAL, where + ": " + what};
  }
  [[nodiscard]] std::string archive_message() const {
    const char* m = archive_error_string(a_.get());
    return m != nullptr ? m : "unknown libarchive error";
  }
  Status entry(archive_entry* e, const std::string& name);
  static la_ssize_t read_callback(archive* a, void* self, const void** buffer) {
    auto* reader = static_cast<LayerReader*>(self);
    auto piece = reader->stream_->read();
    if (!piece.ok()) {
      archive_set_error(a, EIO, "%s", piece.error().message.c_str());
      return -1;
    }
    *buffer = piece->data();
    return static_cast<la_ssize_t>(piece->size());
  }
  Status read_data(Node& node, const std::string& name);

  const LayerSource& source_;
  uint32_t layer_;
  Tree& tree_;
  BlobStore& blobs_;
  std::unique_ptr<LayerStream> stream_;
  ArchivePtr a_;  // after stream_: freed first
  std::vector<std::byte> buffer_;
  LayerStats stats_;
};

Result<LayerStats> LayerReader::run() {
  a_.reset(archive_read_new());
  if (!a_) throw std::bad_alloc();
  auto stream = LayerStream::open(source_.path, source_.bytes);
  if (!stream.ok()) return fail("", stream.error().message);
  stream_ = std::move(stream).value();
  archive_read_support_format_tar(a_.get());
  int r = archive_read_open(a_.get(), this, nullptr, &LayerReader::read_callback, nullptr);
  if (r != ARCHIVE_OK)
    return fail("", "not a tar archive (" + std::string(stream_->format()) + "): " + archive_message());
  FERRY_TRY(blobs_.begin_layer(layer_));
  std::string last = "(the first entry)";
  for (;;) {
    archive_entry* e = nullptr;
    r = archive_read_next_header(a_.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK) {
      const char* p = (r == ARCHIVE_WARN && e != nullptr) ? archive_entry_pathname(e) : nullptr;
      return fail(p != nullptr ? p : "",
                  "corrupt or truncated tar after entry '" + last + "': " + archive_message());
    }
    const char* p = archive_entry_pathname(e);
    const std::string name = p != nullptr ? p : "";
    FERRY_TRY(entry(e, name));
    last = name;
    ++stats_.entries;
  }
  if (auto s = stream_->finish(); !s.ok())
    return fail("", "after the last entry '" + last + "': " + s.error().message);
  FERRY_TRY(blobs_.end_layer());
  return stats_;
}

Status LayerReader::read_data(Node& node, const std::string& name) {
  const uint64_t size = node.size;
  uint64_t done = 0;
  while (done < size) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buffer_.size(), size - done));
    size_t got = 0;
    while (got < want) {
      la_ssize_t n = archive_read_data(a_.get(), buffer_.data() + got, want - got);
      if (n < 0) return fail(name, "corrupt or truncated file data: " + archive_message());
      if (n == 0) {
        return fail(name, "the data ends after " + std::to_string(done + got) + " of " +
                              std::to_string(size) + " bytes (truncated tar)");
      }
      got += static_cast<size_t>(n);
    }
    auto ref = blobs_.add(std::span<const std::byte>(buffer_).first(want));
    if (!ref.ok()) return fail(name, ref.error().message);
    node.chunks.push_back(*ref);
    done += want;
  }
  stats_.file_bytes += size;
  return {};
}

Status LayerReader::entry(archive_entry* e, const std::string& name) {
  auto parts = split_entry_path(name);
  if (!parts.ok()) return fail(name, parts.error().message);
  const std::string base = parts->empty() ? std::string() : parts->back();

  if (std::string_view(base).starts_with(kWhiteoutPrefix)) {
    PathParts parent(parts->begin(), parts->end() - 1);
    if (base == kOpaqueMarker) {
      auto s = tree_.opaque(parent, layer_);
      return s.ok() ? s : fail(name, s.error().message);
    }
    if (std::string_view(base).starts_with(kWhiteoutMeta))
      return {};  // aufs bookkeeping, as containerd skips
    std::string target = base.substr(kWhiteoutPrefix.size());
    if (target.empty() || target == "." || target == "..") return fail(name, "a whiteout that names nothing");
    parent.push_back(target);
    auto s = tree_.whiteout(parent);
    return s.ok() ? s : fail(name, s.error().message);
  }

  if (const char* hl = archive_entry_hardlink(e); hl != nullptr) {
    auto target = split_entry_path(hl);
    if (!target.ok()) return fail(name, "hard link target: " + target.error().message);
    auto s = tree_.link(*parts, *target, layer_);
    return s.ok() ? s : fail(name, s.error().message);
  }

  auto node = std::make_shared<Node>();
  const mode_t type = archive_entry_filetype(e);
  node->mode = static_cast<uint32_t>(type | (archive_entry_perm(e) & 07777));
  node->uid = static_cast<uint32_t>(archive_entry_uid(e));
  node->gid = static_cast<uint32_t>(archive_entry_gid(e));
  if (archive_entry_uid(e) < 0 || archive_entry_uid(e) > UINT32_MAX || archive_entry_gid(e) < 0 ||
      archive_entry_gid(e) > UINT32_MAX) {
    return fail(name, "uid or gid outside 0..2^32-1");
  }
  if (archive_entry_mtime_is_set(e) != 0) {
    node->mtime = archive_entry_mtime(e);
    const long ns = archive_entry_mtime_nsec(e);
    node->mtime_nsec = ns >= 0 && ns < 1000000000 ? static_cast<uint32_t>(ns) : 0;
  }
  archive_entry_xattr_reset(e);
  const char* xname = nullptr;
  const void* xvalue = nullptr;
  size_t xsize = 0;
  while (archive_entry_xattr_next(e, &xname, &xvalue, &xsize) == ARCHIVE_OK) {
    std::string key = xname != nullptr ? xname : "";
    // A PAX record with an empty value unsets the keyword (POSIX pax); Go's archive/tar, hence
    // containerd and umoci, read no xattr from it, so neither does the image.
    if (xsize == 0) continue;
    if (!xattr_name_index(key)) {
      return fail(name,
                  "xattr '" + key +
                      "' has a name EROFS cannot store (user., trusted., security., system.posix_acl_*)");
    }
    if (xsize > UINT16_MAX) return fail(name, "xattr '" + key + "' is larger than 65535 bytes");
    std::string value(static_cast<const char*>(xvalue), xsize);
    auto same = std::find_if(node->xattrs.begin(), node->xattrs.end(),
                             [&](const auto& kv) { return kv.first == key; });
    if (same != node->xattrs.end()) {
      same->second = std::move(value);
    } else {
      node->xattrs.emplace_back(std::move(key), std::move(value));
    }
  }

  switch (type) {
    case AE_IFREG:
      if (archive_entry_size(e) < 0) return fail(name, "negative size");
      node->size = static_cast<uint64_t>(archive_entry_size(e));
      if (source_.max_file_bytes != 0 &&
          node->size > source_.max_file_bytes - std::min(stats_.file_bytes, source_.max_file_bytes)) {
        return fail(name, "the layer's files exceed the limit of " + std::to_string(source_.max_file_bytes) +
                              " bytes");
      }
      FERRY_TRY(read_data(*node, name));
      break;
    case AE_IFDIR:
      break;
    case AE_IFLNK: {
      const char* t = archive_entry_symlink(e);
      node->link_target = t != nullptr ? t : "";
      if (node->link_target.empty()) return fail(name, "a symlink with an empty target");
      break;
    }
    case AE_IFCHR:
    case AE_IFBLK:
      node->rdev_major = static_cast<uint32_t>(archive_entry_rdevmajor(e));
      node->rdev_minor = static_cast<uint32_t>(archive_entry_rdevminor(e));
      if (node->rdev_major > 0xfff || node->rdev_minor > 0xfffff) {
        return fail(name, "device number " + std::to_string(node->rdev_major) + ":" +
                              std::to_string(node->rdev_minor) +
                              " does not fit EROFS's 12-bit major and 20-bit minor");
      }
      break;
    case AE_IFIFO:
      break;
    default:
      return fail(name, "unsupported entry type (sockets and unknown types cannot be in an image)");
  }
  if (parts->empty() && type != AE_IFDIR) return fail(name, "the image root must be a directory");
  auto s = tree_.add(*parts, std::move(node), layer_);
  return s.ok() ? s : fail(name, s.error().message);
}

}  // namespace

Result<LayerStats> apply_layer(const LayerSource& source, uint32_t layer, Tree& tree, BlobStore& blobs) {
  LayerReader reader(source, layer, tree, blobs);
  return reader.run();
}

}  // namespace ferry::builder
