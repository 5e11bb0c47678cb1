#include "oci/layout.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/unique_fd.h"
#include "oci/file_util.h"
#include "oci/media_types.h"

namespace ferry::oci {

namespace {

constexpr std::string_view kLayoutFile = R"({"imageLayoutVersion":"1.0.0"})";
constexpr size_t kMaxIndexSize = kMaxManifestSize;

Status mkdir_p(const std::string& path) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    partial = path.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) return errno_error("creating " + partial);
  }
  return {};
}

}  // namespace

Result<OciLayout> OciLayout::open(const std::string& dir) {
  auto layout = read_file_bounded(dir + "/oci-layout", 4096);
  if (!layout) return std::move(layout).error().context("not an OCI image layout: " + dir);
  const auto j = nlohmann::json::parse(*layout, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("imageLayoutVersion") || !j["imageLayoutVersion"].is_string() ||
      j["imageLayoutVersion"] != "1.0.0") {
    return Error{EINVAL, dir + "/oci-layout: expected {\"imageLayoutVersion\": \"1.0.0\"}"};
  }
  return OciLayout(dir);
}

Result<OciLayout> OciLayout::create(const std::string& dir) {
  struct stat st {};
  if (::stat((dir + "/oci-layout").c_str(), &st) == 0) return open(dir);
  FERRY_TRY(mkdir_p(dir + "/blobs/sha256"));
  if (::stat((dir + "/index.json").c_str(), &st) != 0) {
    FERRY_TRY(write_file_atomic(dir + "/index.json", R"({"schemaVersion":2,"manifests":[]})"));
  }
  FERRY_TRY(write_file_atomic(dir + "/oci-layout", kLayoutFile));
  return OciLayout(dir);
}

std::string OciLayout::blob_path(const Digest& digest) const {
  return dir_ + "/blobs/sha256/" + std::string(digest.hex());
}

bool OciLayout::has_blob(const Digest& digest) const {
  struct stat st {};
  return ::stat(blob_path(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<std::string> OciLayout::read_blob(const Descriptor& d, size_t max_size) const {
  const std::string what = "layout " + dir_ + ", blob " + d.digest.str();
  if (d.size < 0 || static_cast<uint64_t>(d.size) > max_size) {
    return Error{EFBIG, what + ": size " + std::to_string(d.size) + " over the limit of " + std::to_string(max_size)};
  }
  auto bytes = read_file_bounded(blob_path(d.digest), max_size);
  if (!bytes) return std::move(bytes).error().context(what);
  if (static_cast<int64_t>(bytes->size()) != d.size) {
    return Error{EBADMSG, what + ": size " + std::to_string(bytes->size()) + ", descriptor says " + std::to_string(d.size)};
  }
  const Digest actual = Digest::of(*bytes);
  if (actual != d.digest) return digest_mismatch(what, d.digest, actual);
  return bytes;
}

Status OciLayout::verify_blob(const Descriptor& d) const {
  const std::string what = "layout " + dir_ + ", blob " + d.digest.str();
  auto fd = digest_file(blob_path(d.digest));
  if (!fd) return std::move(fd).error().context(what);
  if (fd->size != d.size) {
    return Error{EBADMSG, what + ": size " + std::to_string(fd->size) + ", descriptor says " + std::to_string(d.size)};
  }
  if (fd->digest != d.digest) return digest_mismatch(what, d.digest, fd->digest);
  return {};
}

Result<Descriptor> OciLayout::write_blob(std::string_view bytes, std::string media_type) {
  Descriptor d;
  d.media_type = std::move(media_type);
  d.digest = Digest::of(bytes);
  d.size = static_cast<int64_t>(bytes.size());
  if (!has_blob(d.digest)) FERRY_TRY(write_file_atomic(blob_path(d.digest), bytes));
  return d;
}

Result<Descriptor> OciLayout::import_blob_file(const std::string& path, std::string media_type) {
  UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return errno_error("opening " + path);
  FERRY_ASSIGN(TempFile tmp, TempFile::beside(dir_ + "/blobs/sha256/import"));
  auto copied = digest_fd(in.get(), tmp.fd());
  if (!copied) return std::move(copied).error().context("copying " + path + " into layout " + dir_);
  Descriptor d;
  d.media_type = std::move(media_type);
  d.digest = copied->digest;
  d.size = copied->size;
  FERRY_TRY(tmp.commit(blob_path(d.digest)));
  return d;
}

Result<ImageIndex> OciLayout::read_index() const {
  auto bytes = read_file_bounded(dir_ + "/index.json", kMaxIndexSize);
  if (!bytes) return std::move(bytes).error().context("layout " + dir_);
  auto any = parse_manifest(*bytes, media_type::kOciIndex);
  if (!any) return std::move(any).error().context("layout " + dir_ + ", index.json");
  if (!std::holds_alternative<ImageIndex>(*any)) return Error{EINVAL, "layout " + dir_ + ", index.json: not an image index"};
  return std::get<ImageIndex>(std::move(any).value());
}

Result<Descriptor> OciLayout::resolve(std::string_view tag) const {
  FERRY_ASSIGN(const ImageIndex index, read_index());
  if (tag.empty()) {
    if (index.manifests.size() == 1) return index.manifests.front();
    return Error{EINVAL, "layout " + dir_ + " holds " + std::to_string(index.manifests.size()) +
                             " manifests: name one as oci:" + dir_ + ":TAG"};
  }
  std::string tags;
  for (const auto& d : index.manifests) {
    const auto it = d.annotations.find(std::string(kRefNameAnnotation));
    if (it == d.annotations.end()) continue;
    if (it->second == tag) return d;
    tags += (tags.empty() ? "" : ", ") + it->second;
  }
  return Error{ENOENT, "layout " + dir_ + " has no tag '" + std::string(tag) + "' (tags: " + (tags.empty() ? "none" : tags) + ")"};
}

Status OciLayout::set_tag(Descriptor manifest, const std::string& tag) {
  FERRY_ASSIGN(ImageIndex index, read_index());
  std::erase_if(index.manifests, [&](const Descriptor& d) {
    const auto it = d.annotations.find(std::string(kRefNameAnnotation));
    return it != d.annotations.end() && it->second == tag;
  });
  manifest.annotations[std::string(kRefNameAnnotation)] = tag;
  index.manifests.push_back(std::move(manifest));
  index.media_type = media_type::kOciIndex;
  return write_file_atomic(dir_ + "/index.json", serialize(index));
}

}  // namespace ferry::oci
