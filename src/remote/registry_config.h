// RegistryConfig: where a registry-backed image's blobs are (nydusd's `device.backend.config` of
// type "registry"), as the daemon parsed it. Plain data, no behaviour.
//
// `auth` and `registry_token` are secrets: nothing may log, print or save them in a file
// readable by others (the struct has no to_string on purpose).
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace ferry::remote {

struct RegistryConfig {
  std::string scheme = "https";                   // "https" or "http" (nydusd: empty = https)
  std::string host;                               // "HOST[:PORT]"
  std::string repo;                               // "NS/REPO"
  std::string auth;                               // base64("user:pass"), secret
  std::string registry_token;                     // a static Bearer token, secret
  bool skip_verify = false;                       // TLS without certificate checks
  std::vector<std::string> ca_cert_files;         // PEM files trusted besides the system store
  std::chrono::milliseconds timeout{5'000};       // deadline of one fetch, retries included
  std::chrono::milliseconds connect_timeout{5'000};
  int retry_limit = 2;                            // retries after the first attempt
};

}  // namespace ferry::remote
