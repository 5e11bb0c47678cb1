// RegistryFetcher: the storage::RemoteBlobFetcher of a registry-backed image, as ferryd uses it.
//
// Why a module: ferryd loads no shared library but libc (its start-up is inside a failover
// blackout, src/daemon/CMakeLists.txt), and libcurl brings ~30 of them. So the HTTP client is
// ferry-registry.so (registry_module.cc, ABI in registry_module_abi.h), and this class dlopen()s
// it on the FIRST FETCH, not when the image is opened: a successor daemon whose reads are
// cache hits or local metadata starts, and stays, with libc only. The module is loaded once per
// process and never unloaded (a fetch may be running in it).
//
// The module is found relative to the running executable: <dir of /proc/self/exe>/../lib/ferry/
// ferry-registry.so (build tree: bin/ferryd and lib/ferry/; install tree: bin/ and lib/ferry/).
// create() checks that the file is there (a missing module refuses the image, naming the path);
// a module that cannot be loaded or speaks another ABI version fails each fetch with an error
// naming the path (EIO to the reader), and is tried again on the next fetch.
//
// Thread-safety: fetch() from many threads; after the first success it is one atomic load and
// the module's call. Errors name the registry and repository (and the blob: the module's
// messages do), never a credential.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "common/result.h"
#include "remote/registry_config.h"
#include "storage/remote_blob_fetcher.h"

struct ferry_registry_module;

namespace ferry::remote {

// Where the registry module of this executable is.
std::string registry_module_path();

class RegistryFetcher final : public storage::RemoteBlobFetcher {
 public:
  // ENOENT naming the module's path when it is not there. Loads nothing.
  static Result<std::shared_ptr<RegistryFetcher>> create(RegistryConfig config,
                                                         std::string module_path = registry_module_path());
  struct Key {
    explicit Key() = default;
  };
  RegistryFetcher(Key, RegistryConfig config, std::string module_path);
  ~RegistryFetcher() override;
  RegistryFetcher(const RegistryFetcher&) = delete;
  RegistryFetcher& operator=(const RegistryFetcher&) = delete;

  Status fetch(const std::string& digest, uint64_t offset, std::span<std::byte> out,
               Clock::time_point deadline) const override;
  [[nodiscard]] std::chrono::milliseconds timeout() const override { return config_.timeout; }
  [[nodiscard]] const std::string& name() const override { return name_; }

 private:
  // Loads the module and makes the client the first time; the client afterwards.
  Result<void*> client() const;

  RegistryConfig config_;
  std::string module_path_;
  std::string name_;
  mutable std::mutex mu_;  // only while loading
  mutable std::atomic<void*> client_{nullptr};
  mutable const ferry_registry_module* module_ = nullptr;  // set (under mu_) before client_
};

}  // namespace ferry::remote
