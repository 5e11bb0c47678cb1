#include "remote/registry_fetcher.h"

#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <array>
#include <vector>

#include "remote/registry_module_abi.h"

namespace ferry::remote {
namespace {

constexpr size_t kErrorSize = 512;

// The process's one copy of the module: loaded under a lock, kept until exit.
std::mutex g_module_mu;
const ferry_registry_module* g_module = nullptr;

Result<const ferry_registry_module*> load_module(const std::string& path) {
  std::lock_guard lock(g_module_mu);
  if (g_module != nullptr) return g_module;
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    return Error{EIO, "cannot load the registry module '" + path + "': " + (why != nullptr ? why : "unknown error")};
  }
  auto get = reinterpret_cast<ferry_registry_module_get_fn>(::dlsym(handle, FERRY_REGISTRY_GET_SYMBOL));
  const ferry_registry_module* module = get != nullptr ? get(FERRY_REGISTRY_ABI_VERSION) : nullptr;
  if (module == nullptr || module->abi_version != FERRY_REGISTRY_ABI_VERSION) {
    ::dlclose(handle);
    return Error{EIO, "the registry module '" + path + "' does not offer ABI version " +
                          std::to_string(FERRY_REGISTRY_ABI_VERSION) + " (a module of another Ferry version?)"};
  }
  g_module = module;  // the handle is never closed
  return g_module;
}

}  // namespace

std::string registry_module_path() {
  std::array<char, PATH_MAX> buf{};
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  std::string exe = n > 0 ? std::string(buf.data(), static_cast<size_t>(n)) : std::string("/usr/local/bin/ferryd");
  // A binary replaced on disk (an upgrade) reads as "PATH (deleted)": its directory still holds.
  const auto slash = exe.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : exe.substr(0, slash);
  return dir + "/../lib/ferry/ferry-registry.so";
}

Result<std::shared_ptr<RegistryFetcher>> RegistryFetcher::create(RegistryConfig config, std::string module_path) {
  if (::access(module_path.c_str(), R_OK) != 0) {
    return errno_error("registry " + config.host + ", repository " + config.repo +
                       ": the registry module '" + module_path + "' is not installed");
  }
  return std::make_shared<RegistryFetcher>(Key{}, std::move(config), std::move(module_path));
}

RegistryFetcher::RegistryFetcher(Key, RegistryConfig config, std::string module_path)
    : config_(std::move(config)), module_path_(std::move(module_path)) {
  name_ = "registry " + config_.host + ", repository " + config_.repo;
}

RegistryFetcher::~RegistryFetcher() {
  if (void* c = client_.load(std::memory_order_acquire); c != nullptr) module_->destroy(c);
}

Result<void*> RegistryFetcher::client() const {
  if (void* c = client_.load(std::memory_order_acquire); c != nullptr) return c;
  std::lock_guard lock(mu_);
  if (void* c = client_.load(std::memory_order_acquire); c != nullptr) return c;
  auto module = load_module(module_path_);
  if (!module.ok()) return std::move(module).error().context(name_);
  std::vector<const char*> cas;
  cas.reserve(config_.ca_cert_files.size());
  for (const auto& f : config_.ca_cert_files) cas.push_back(f.c_str());
  const ferry_registry_config c{config_.scheme.c_str(),
                                config_.host.c_str(),
                                config_.repo.c_str(),
                                config_.auth.c_str(),
                                config_.registry_token.c_str(),
                                config_.skip_verify ? 1 : 0,
                                cas.data(),
                                cas.size(),
                                config_.timeout.count(),
                                config_.connect_timeout.count(),
                                config_.retry_limit};
  int code = EIO;
  std::array<char, kErrorSize> err{};
  void* made = (*module)->create(&c, &code, err.data(), err.size());
  if (made == nullptr) return Error{code != 0 ? code : EIO, err.data()};
  module_ = *module;
  client_.store(made, std::memory_order_release);
  return made;
}

Status RegistryFetcher::fetch(const std::string& digest, uint64_t offset, std::span<std::byte> out,
                              Clock::time_point deadline) const {
  FERRY_ASSIGN(void* c, client());
  std::array<char, kErrorSize> err{};
  const int64_t deadline_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  const int rc = module_->fetch(c, digest.c_str(), offset, out.data(), out.size(), deadline_ns, err.data(), err.size());
  if (rc != 0) return Error{rc, err.data()};
  return ok_status();
}

}  // namespace ferry::remote
