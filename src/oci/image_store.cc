#include "oci/image_store.h"

#include <fcntl.h>

#include "common/unique_fd.h"
#include "oci/file_util.h"

#include "oci/layout.h"
#include "oci/media_types.h"

namespace ferry::oci {

namespace {

class RegistryStore final : public ImageStore {
 public:
  RegistryStore(std::unique_ptr<RegistryClient> client, std::string repo)
      : client_(std::move(client)), repo_(std::move(repo)) {}
  [[nodiscard]] std::string where() const override { return "registry " + client_->host() + ", repository " + repo_; }
  Result<FetchedManifest> get_manifest(const std::string& reference) override {
    return client_->get_manifest(repo_, reference.empty() ? "latest" : reference);
  }
  Result<std::string> read_blob(const Descriptor& d, size_t max_size) override {
    return client_->get_blob(repo_, d, max_size);
  }
  Status read_blob_to_file(const Descriptor& d, const std::string& path) override {
    return client_->get_blob_to_file(repo_, d, path);
  }
  Result<bool> write_blob(const Descriptor& d, std::string_view bytes) override {
    return client_->push_blob(repo_, d, bytes);
  }
  Result<bool> write_blob_file(const Descriptor& d, const std::string& path) override {
    return client_->push_blob_file(repo_, d, path);
  }
  Result<Digest> put_manifest(const std::string& tag, std::string_view media_type, std::string_view bytes) override {
    return client_->put_manifest(repo_, tag, media_type, bytes);
  }

 private:
  std::unique_ptr<RegistryClient> client_;
  std::string repo_;
};

class LayoutStore final : public ImageStore {
 public:
  explicit LayoutStore(OciLayout layout) : layout_(std::move(layout)) {}
  [[nodiscard]] std::string where() const override { return "layout " + layout_.dir(); }
  Result<FetchedManifest> get_manifest(const std::string& reference) override {
    Descriptor d;
    if (auto digest = Digest::parse(reference); digest) {
      d.digest = *digest;
      auto size = digest_file(layout_.blob_path(d.digest));
      if (!size) return std::move(size).error().context(where() + ", manifest " + reference);
      d.size = size->size;
    } else {
      FERRY_ASSIGN(d, layout_.resolve(reference));
    }
    FERRY_ASSIGN(std::string bytes, layout_.read_blob(d, kMaxManifestSize));
    return FetchedManifest{std::move(bytes), d.media_type, d.digest};
  }
  Result<std::string> read_blob(const Descriptor& d, size_t max_size) override { return layout_.read_blob(d, max_size); }
  Status read_blob_to_file(const Descriptor& d, const std::string& path) override {
    FERRY_TRY(layout_.verify_blob(d));
    FERRY_ASSIGN(TempFile tmp, TempFile::beside(path));
    UniqueFd in(::open(layout_.blob_path(d.digest).c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return errno_error(where() + ": opening blob " + d.digest.str());
    auto copied = digest_fd(in.get(), tmp.fd());
    if (!copied) return std::move(copied).error().context(where() + ", blob " + d.digest.str());
    if (copied->digest != d.digest) return digest_mismatch(where() + ", blob", d.digest, copied->digest);
    return tmp.commit(path);
  }
  Result<bool> write_blob(const Descriptor& d, std::string_view bytes) override {
    if (layout_.has_blob(d.digest)) return false;
    FERRY_ASSIGN(const Descriptor written, layout_.write_blob(bytes, d.media_type));
    if (written.digest != d.digest) return digest_mismatch(where() + ", storing blob", d.digest, written.digest);
    return true;
  }
  Result<bool> write_blob_file(const Descriptor& d, const std::string& path) override {
    if (layout_.has_blob(d.digest)) return false;
    FERRY_ASSIGN(const Descriptor written, layout_.import_blob_file(path, d.media_type));
    if (written.digest != d.digest) return digest_mismatch(where() + ", storing " + path, d.digest, written.digest);
    return true;
  }
  Result<Digest> put_manifest(const std::string& tag, std::string_view media_type, std::string_view bytes) override {
    FERRY_ASSIGN(const Descriptor d, layout_.write_blob(bytes, std::string(media_type)));
    FERRY_TRY(layout_.set_tag(d, tag.empty() ? "latest" : tag));
    return d.digest;
  }

 private:
  OciLayout layout_;
};

}  // namespace

Result<std::unique_ptr<ImageStore>> open_store(const ImageReference& ref, const StoreOptions& options,
                                               bool create_layout) {
  if (ref.is_layout()) {
    auto layout = create_layout ? OciLayout::create(ref.layout_dir) : OciLayout::open(ref.layout_dir);
    if (!layout) return std::move(layout).error();
    return std::unique_ptr<ImageStore>(std::make_unique<LayoutStore>(std::move(layout).value()));
  }
  RegistryOptions r = options.registry;
  r.host = ref.host;
  r.plain_http = options.plain_http;
  r.tls = options.tls;
  if (options.credentials) {
    r.credentials = *options.credentials;
  } else {
    const bool explicit_file = !options.authfile.empty();
    const std::string file = explicit_file ? options.authfile : default_authfile();
    auto creds = load_docker_credentials(file, ref.host);
    if (creds.ok()) {
      if (creds->has_value()) r.credentials = **creds;
    } else if (explicit_file || creds.error().code != ENOENT) {
      return std::move(creds).error();
    }
  }
  FERRY_ASSIGN(auto client, RegistryClient::create(std::move(r)));
  return std::unique_ptr<ImageStore>(std::make_unique<RegistryStore>(std::move(client), ref.repository));
}

Result<ResolvedImage> resolve_image(ImageStore& store, const ImageReference& ref) {
  const std::string what = store.where() + ", image " + ref.str();
  FERRY_ASSIGN(FetchedManifest fetched, store.get_manifest(ref.manifest_reference()));
  auto any = parse_manifest(fetched.bytes, fetched.media_type);
  if (!any) return std::move(any).error().context(what);
  if (const auto* index = std::get_if<ImageIndex>(&*any)) {
    auto entry = select_platform(*index);
    if (!entry) return std::move(entry).error().context(what);
    FERRY_ASSIGN(fetched, store.get_manifest(entry->digest.str()));
    if (fetched.digest != entry->digest) return digest_mismatch(what, entry->digest, fetched.digest);
    any = parse_manifest(fetched.bytes, entry->media_type);
    if (!any) return std::move(any).error().context(what + ", manifest " + entry->digest.str());
    if (!std::holds_alternative<ImageManifest>(*any)) {
      return Error{EINVAL, what + ": the linux/amd64 entry is an index again, not an image manifest"};
    }
  }
  ResolvedImage image;
  image.manifest_digest = fetched.digest;
  image.manifest = std::get<ImageManifest>(std::move(any).value());
  const std::string& ct = image.manifest.config.media_type;
  if (ct != media_type::kOciConfig && ct != media_type::kDockerConfig) {
    return Error{EINVAL, what + ": config media type '" + ct + "' is not an image config"};
  }
  if (image.manifest.layers.empty()) return Error{EINVAL, what + ": the manifest has no layers"};
  FERRY_ASSIGN(std::string config_bytes, store.read_blob(image.manifest.config, kMaxConfigSize));
  auto config = ImageConfig::parse(std::move(config_bytes));
  if (!config) return std::move(config).error().context(what);
  image.config = std::move(config).value();
  return image;
}

}  // namespace ferry::oci
