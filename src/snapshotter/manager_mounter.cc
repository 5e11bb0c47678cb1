#include "snapshotter/manager_mounter.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "common/dirs.h"
#include "oci/base64.h"
#include "oci/credentials.h"
#include "oci/registry_client.h"

namespace ferry::snapshotter {
namespace {

// The docker config.json's entry for `host`; a missing file (or none configured) is anonymous.
Result<oci::Credentials> credentials_for(const std::string& auth_file, const std::string& host) {
  if (auth_file.empty()) return oci::Credentials{};
  auto found = oci::load_docker_credentials(auth_file, host);
  if (!found.ok() && found.error().code == ENOENT) return oci::Credentials{};
  if (!found.ok()) return Error{EINVAL, "[remote] auth_file: " + found.error().message};
  return found->value_or(oci::Credentials{});
}

bool is_insecure(const manager::ManagerConfig& config, const std::string& host) {
  const auto& hosts = config.remote.insecure_registries;
  return std::find(hosts.begin(), hosts.end(), host) != hosts.end();
}

}  // namespace

Result<std::string> ferry_daemon_config(const manager::ManagerConfig& settings, const FerryImage& image) {
  FERRY_ASSIGN(oci::Credentials creds, credentials_for(settings.remote.auth_file, image.ref.host));
  nlohmann::json registry = {{"scheme", is_insecure(settings, image.ref.host) ? "http" : "https"},
                             {"host", image.ref.host},
                             {"repo", image.ref.repository}};
  if (creds.has_basic()) registry["auth"] = oci::base64_encode(creds.username + ":" + creds.password);
  if (!creds.registry_token.empty()) registry["registry_token"] = creds.registry_token;
  nlohmann::json config = {
      {"device",
       {{"backend", {{"type", "registry"}, {"config", registry}}},
        {"cache", {{"type", "blobcache"}, {"config", {{"work_dir", settings.cache_dir()}}}}}}}};
  return config.dump();
}

bool ManagerFerryMounter::insecure(const std::string& host) const {
  return is_insecure(config_, host);
}

Status ManagerFerryMounter::probe(const FerryImage& image, bool plain_http) const {
  oci::RegistryOptions options;
  options.host = image.ref.host;
  options.plain_http = plain_http;
  FERRY_ASSIGN(options.credentials, credentials_for(config_.remote.auth_file, image.ref.host));
  options.timeout = probe_deadline_;
  options.connect_timeout = std::min<std::chrono::milliseconds>(probe_deadline_, std::chrono::seconds(5));
  options.retry_limit = 1;
  auto client = oci::RegistryClient::create(std::move(options));
  if (!client.ok()) return Error{EINVAL, "registry " + image.ref.host + ": " + client.error().message};
  const auto deadline = oci::Clock::now() + probe_deadline_;
  Status reached = ok_status();
  if (!image.blob_digest.empty()) {
    FERRY_ASSIGN(oci::Digest digest, oci::Digest::parse(image.blob_digest));
    auto size = (*client)->head_blob(image.ref.repository, digest, deadline);
    if (size.ok() && !size->has_value()) {
      return Error{EIO, "registry " + image.ref.host + ", repository " + image.ref.repository + ": blob " +
                            image.blob_digest + " of the image is not there"};
    }
    if (!size.ok()) reached = std::move(size).error();
  } else {
    auto d = (*client)->head_manifest(image.ref.repository, image.ref.manifest_reference(), deadline);
    if (!d.ok()) reached = std::move(d).error();
  }
  // EIO whatever the cause: containerd must not read NotFound or AlreadyExists into it.
  if (!reached.ok()) return Error{EIO, "the image's registry does not answer: " + reached.error().message};
  return ok_status();
}

Status ManagerFerryMounter::mount(const FerryImage& image) {
  FERRY_TRY(make_dirs(config_.cache_dir(), 0700));
  FERRY_TRY(probe(image, insecure(image.ref.host)));
  FERRY_ASSIGN(std::string config_json, ferry_daemon_config(config_, image));
  auto answer = manager_.mount(manager::MountRequest{image.mountpoint, image.bootstrap, std::move(config_json)});
  if (!answer.ok()) return std::move(answer).error();
  return ok_status();
}

Status ManagerFerryMounter::umount(const std::string& mountpoint) {
  return manager_.umount(mountpoint);
}

bool ManagerFerryMounter::mounted(const std::string& mountpoint) const {
  for (const auto& m : manager_.mounts()) {
    if (m.mountpoint == mountpoint) return true;
  }
  return false;
}

}  // namespace ferry::snapshotter
