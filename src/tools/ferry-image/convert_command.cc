// `ferry-image convert`: an OCI or Docker image (a registry or an OCI layout) in, a Ferry image
// out (docs/image-format.md), pushed to a registry or written to a layout.
//
// What it does: resolves the source (an index to linux/amd64), fetches every layer to a private
// work directory (verified against its digest), builds the bootstrap and blobs, then pushes
// the blobs (annotated containerd.io/snapshot/ferry-blob, skipped when the target has them),
// the bootstrap layer (gzip'd tar holding image/image.boot, annotated
// containerd.io/snapshot/ferry-bootstrap), the source's config with rootfs.diff_ids adjusted
// (a blob's diff_id is its digest: it is stored uncompressed as far as the manifest says; the
// bootstrap layer's is the tar's sha256), and an OCI manifest under the target's tag. Prints a
// JSON summary on stdout. The work directory is removed whatever happens.
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "builder/builder.h"
#include "builder/prefetch_list.h"
#include "common/unique_fd.h"
#include "oci/bootstrap_layer.h"
#include "oci/file_util.h"
#include "oci/image_store.h"
#include "oci/media_types.h"
#include "storage/chunk_codec.h"
#include "tools/ferry-image/command.h"

namespace ferry::image_tool {
namespace {

// A private directory under $TMPDIR, removed on destruction.
class WorkDir {
 public:
  static Result<WorkDir> create() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/ferry-convert-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return errno_error("creating a work directory");
    return WorkDir(pattern);
  }
  WorkDir(WorkDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  WorkDir& operator=(WorkDir&&) = delete;
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  ~WorkDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  [[nodiscard]] std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  explicit WorkDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// gzip (RFC 1952, no name, mtime 0: the same input gives the same blob) of `in` into `out`.
Status gzip_file(const std::string& in, const std::string& out) {
  UniqueFd fd(::open(in.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("opening " + in);
  gzFile gz = gzopen(out.c_str(), "wb6");
  if (gz == nullptr) return errno_error("creating " + out);
  std::vector<char> buf(1 << 20);
  while (true) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      gzclose(gz);
      return errno_error("reading " + in);
    }
    if (n == 0) break;
    if (gzwrite(gz, buf.data(), static_cast<unsigned>(n)) != static_cast<int>(n)) {
      gzclose(gz);
      return Error{EIO, "compressing " + in + " into " + out};
    }
  }
  if (gzclose(gz) != Z_OK) return Error{EIO, "finishing " + out};
  return {};
}

struct ConvertOptions {
  std::string source;
  std::string target;
  std::string compressor = "zstd";
  uint32_t chunk_size = builder::kDefaultChunkSize;
  bool plain_http = false;
  std::string authfile;
  std::string source_creds;
  std::string target_creds;
  std::string prefetch_files;
};

Result<oci::StoreOptions> store_options(const ConvertOptions& o, const std::string& creds) {
  oci::StoreOptions s;
  s.plain_http = o.plain_http;
  s.authfile = o.authfile;
  if (!creds.empty()) {
    auto c = oci::Credentials::from_user_pass(creds);
    if (!c) return std::move(c).error();
    s.credentials = std::move(c).value();
  }
  return s;
}

Result<nlohmann::json> convert(const ConvertOptions& o) {
  FERRY_ASSIGN(const oci::ImageReference src_ref, oci::ImageReference::parse(o.source));
  FERRY_ASSIGN(oci::ImageReference dst_ref, oci::ImageReference::parse(o.target));
  if (dst_ref.tag.empty()) {
    if (dst_ref.digest.valid())
      return Error{EINVAL, "--target needs a tag, not a digest: the manifest is new"};
    dst_ref.tag = "latest";
  }
  FERRY_ASSIGN(const erofs::Compression compressor, storage::parse_compression(o.compressor));
  FERRY_ASSIGN(const oci::StoreOptions src_options, store_options(o, o.source_creds));
  FERRY_ASSIGN(const oci::StoreOptions dst_options, store_options(o, o.target_creds));
  FERRY_ASSIGN(auto src, oci::open_store(src_ref, src_options, /*create_layout=*/false));
  FERRY_ASSIGN(oci::ResolvedImage image, oci::resolve_image(*src, src_ref));
  // Opened once the source resolves: a target layout is not created for a source that fails.
  FERRY_ASSIGN(auto dst, oci::open_store(dst_ref, dst_options, /*create_layout=*/true));
  FERRY_ASSIGN(const WorkDir work, WorkDir::create());

  // 1. The source layers, verified, into files the builder reads.
  builder::BuildOptions build;
  build.bootstrap = work / "image.boot";
  build.blob_dir = work / "blobs";
  build.compressor = compressor;
  build.chunk_size = o.chunk_size;
  if (!o.prefetch_files.empty()) {
    FERRY_ASSIGN(build.prefetch_paths, builder::read_prefetch_file(o.prefetch_files));
  }
  std::filesystem::create_directory(build.blob_dir);
  for (size_t i = 0; i < image.manifest.layers.size(); ++i) {
    const oci::Descriptor& layer = image.manifest.layers[i];
    const std::string path = work / ("layer-" + std::to_string(i));
    FERRY_TRY(src->read_blob_to_file(layer, path));
    build.layers.push_back({layer.digest.str(), path, {}});  // the builder says "layer N (NAME)"
  }

  // 2. Build.
  FERRY_ASSIGN(const builder::BuildSummary summary, builder::build_image(build));

  // 3. Blobs, then the bootstrap layer.
  oci::ImageManifest out;
  out.media_type = oci::media_type::kOciManifest;
  std::vector<oci::Digest> diff_ids;
  nlohmann::json pushed = nlohmann::json::array();
  for (const auto& blob : summary.blobs) {
    oci::Descriptor d;
    d.media_type = oci::kFerryBlobMediaType;
    d.digest = oci::Digest::from_raw(blob.info.digest);
    d.size = static_cast<int64_t>(blob.info.blob_size);
    d.annotations[std::string(oci::kFerryBlobAnnotation)] = "true";
    FERRY_ASSIGN(const bool uploaded, dst->write_blob_file(d, blob.path));
    pushed.push_back({{"digest", d.digest.str()}, {"size", d.size}, {"uploaded", uploaded}});
    diff_ids.push_back(d.digest);
    out.layers.push_back(std::move(d));
  }
  FERRY_ASSIGN(const oci::Digest bootstrap_diff_id,
               oci::write_bootstrap_tar(build.bootstrap, work / "bootstrap.tar"));
  FERRY_TRY(gzip_file(work / "bootstrap.tar", work / "bootstrap.tar.gz"));
  FERRY_ASSIGN(const oci::FileDigest gz, oci::digest_file(work / "bootstrap.tar.gz"));
  oci::Descriptor boot;
  boot.media_type = oci::media_type::kOciLayerGzip;
  boot.digest = gz.digest;
  boot.size = gz.size;
  boot.annotations[std::string(oci::kFerryBootstrapAnnotation)] = "true";
  FERRY_ASSIGN(const bool boot_uploaded, dst->write_blob_file(boot, work / "bootstrap.tar.gz"));
  diff_ids.push_back(bootstrap_diff_id);
  out.layers.push_back(boot);

  // 4. The source's config with the new rootfs, and the manifest.
  image.config.set_diff_ids(diff_ids);
  out.config = image.config.descriptor(std::string(oci::media_type::kOciConfig));
  FERRY_TRY(dst->write_blob(out.config, image.config.bytes()));
  const std::string manifest = oci::serialize(out);
  FERRY_ASSIGN(const oci::Digest manifest_digest, dst->put_manifest(dst_ref.tag, out.media_type, manifest));

  return nlohmann::json{{"source", src_ref.str()},
                        {"source_manifest", image.manifest_digest.str()},
                        {"target", dst_ref.str()},
                        {"manifest", manifest_digest.str()},
                        {"compressor", std::string(storage::compression_name(summary.compressor))},
                        {"chunk_size", summary.chunk_size},
                        {"prefetch_chunks", summary.prefetch_chunks},
                        {"blobs", pushed},
                        {"bootstrap",
                         {{"digest", boot.digest.str()},
                          {"size", boot.size},
                          {"uploaded", boot_uploaded},
                          {"image_boot_size", summary.bootstrap_size}}},
                        {"dedup_saved_bytes", summary.stats.bytes_deduplicated}};
}

}  // namespace

Command add_convert_command(CLI::App& parent) {
  auto opts = std::make_shared<ConvertOptions>();
  CLI::App* app = parent.add_subcommand(
      "convert",
      "Convert an OCI or Docker image into a Ferry image and push it. SRC and DST are\n"
      "HOST[:PORT]/REPO[:TAG|@sha256:DIGEST] (a registry; HTTPS unless --plain-http) or oci:DIR[:TAG]\n"
      "(an OCI image layout). An index is resolved to linux/amd64. The result: the blob layers\n"
      "(containerd.io/snapshot/ferry-blob), the bootstrap layer (a gzip tar holding image/image.boot,\n"
      "containerd.io/snapshot/ferry-bootstrap) and the source's config (entrypoint, env, cmd kept;\n"
      "rootfs adjusted). Blobs the target has already are not uploaded again. Prints a JSON summary.");
  app->add_option("--source", opts->source, "the image to convert")->required()->type_name("SRC");
  app->add_option("--target", opts->target, "where the Ferry image goes (a tag; default latest)")
      ->required()
      ->type_name("DST");
  app->add_option("--compressor", opts->compressor, "how each chunk is stored: zstd, lz4 or none")
      ->check(CLI::IsMember({"zstd", "lz4", "none"}))
      ->capture_default_str();
  app->add_option("--prefetch-files", opts->prefetch_files,
                  "a file listing paths of the image (one per line), files or directories whose data\n"
                  "ferryd fetches in the background, in this order, when fs_prefetch is enabled")
      ->type_name("FILE");
  app->add_option("--chunk-size", opts->chunk_size, "chunk size in bytes: a power of two, 4096 .. 67108864")
      ->capture_default_str();
  app->add_flag("--plain-http", opts->plain_http, "talk to registries over plain HTTP");
  app->add_option("--authfile", opts->authfile,
                  "docker config.json with registry credentials (default $HOME/.docker/config.json)")
      ->type_name("FILE");
  app->add_option("--source-creds", opts->source_creds, "credentials for the source registry")
      ->type_name("USER:PASS");
  app->add_option("--target-creds", opts->target_creds, "credentials for the target registry")
      ->type_name("USER:PASS");
  return {app, [opts] {
            auto result = convert(*opts);
            if (!result.ok()) {
              std::fprintf(stderr, "ferry-image: error: %s\n", result.error().message.c_str());
              return 1;
            }
            std::printf("%s\n", result->dump(2).c_str());
            return 0;
          }};
}

}  // namespace ferry::image_tool
