// ferry-registry.so: RemoteBlobFetcher's registry side behind a C interface
// (registry_module_abi.h), over oci::RegistryClient (libcurl). Loaded by ferryd on its first
// registry fetch; never linked into ferryd.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <string>

#include "oci/credentials.h"
#include "oci/digest.h"
#include "oci/registry_client.h"
#include "remote/registry_module_abi.h"

namespace {

using namespace ferry;

void put_error(const std::string& message, char* err, size_t err_size) {
  if (err == nullptr || err_size == 0) return;
  const size_t n = std::min(message.size(), err_size - 1);
  std::memcpy(err, message.data(), n);
  err[n] = '\0';
}

struct Client {
  std::unique_ptr<oci::RegistryClient> registry;
  std::string repo;
  std::string what;  // "registry H, repository R"
};

void* create(const ferry_registry_config* c, int* code, char* err, size_t err_size) noexcept {
  try {
    oci::RegistryOptions o;
    o.host = c->host;
    o.plain_http = std::strcmp(c->scheme, "http") == 0;
    o.tls.skip_verify = c->skip_verify != 0;
    for (size_t i = 0; i < c->ca_cert_file_count; ++i) o.tls.ca_files.emplace_back(c->ca_cert_files[i]);
    const std::string what = std::string("registry ") + c->host + ", repository " + c->repo;
    if (c->auth[0] != '\0') {
      auto creds = oci::Credentials::from_base64(c->auth);
      if (!creds.ok()) {
        *code = EINVAL;
        put_error(what + ": device.backend.config.auth is not the base64 of \"user:password\"", err, err_size);
        return nullptr;
      }
      o.credentials = std::move(creds).value();
    }
    o.credentials.registry_token = c->registry_token;
    o.timeout = std::chrono::milliseconds(c->timeout_ms);
    o.transfer_timeout = o.timeout;
    o.stall_timeout = o.timeout;
    o.connect_timeout = std::chrono::milliseconds(c->connect_timeout_ms);
    o.retry_limit = c->retry_limit;
    auto registry = oci::RegistryClient::create(std::move(o));
    if (!registry.ok()) {
      *code = registry.error().code;
      put_error(what + ": " + registry.error().message, err, err_size);
      return nullptr;
    }
    auto client = std::make_unique<Client>(Client{std::move(registry).value(), c->repo, what});
    return client.release();
  } catch (const std::exception& e) {
    *code = ENOMEM;
    put_error(std::string("creating the registry client: ") + e.what(), err, err_size);
    return nullptr;
  }
}

int fetch(void* handle, const char* digest, uint64_t offset, void* out, size_t size, int64_t deadline_ns, char* err,
          size_t err_size) noexcept {
  const auto* client = static_cast<const Client*>(handle);
  try {
    auto d = oci::Digest::parse(digest);
    if (!d.ok()) {
      put_error(client->what + ": " + d.error().message, err, err_size);
      return EINVAL;
    }
    const oci::Deadline deadline{std::chrono::nanoseconds(deadline_ns)};
    Status st = client->registry->read_blob_range(client->repo, *d, offset,
                                                  std::span(static_cast<std::byte*>(out), size), deadline);
    if (!st.ok()) {
      put_error(st.error().message, err, err_size);
      return st.error().code != 0 ? st.error().code : EIO;
    }
    return 0;
  } catch (const std::exception& e) {
    put_error(client->what + ": " + e.what(), err, err_size);
    return ENOMEM;
  }
}

void destroy(void* handle) noexcept {
  std::unique_ptr<Client> owned(static_cast<Client*>(handle));
}

constexpr ferry_registry_module kModule{FERRY_REGISTRY_ABI_VERSION, create, fetch, destroy};

}  // namespace

extern "C" __attribute__((visibility("default"))) const ferry_registry_module* ferry_registry_module_get(
    uint32_t abi_version) {
  return abi_version == FERRY_REGISTRY_ABI_VERSION ? &kModule : nullptr;
}
