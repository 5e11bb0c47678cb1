/* The C interface of ferry-registry.so, the registry fetcher module ferryd loads with dlopen()
 * on its first registry fetch (registry_fetcher.h says why it is a module).
 *
 * One exported function, ferry_registry_module_get(abi_version): the module's table of
 * functions when it speaks that ABI version, NULL when not. Only C types cross: the module has
 * its own copy of the C++ runtime and libcurl; ferryd has none of them. Every string is
 * NUL-terminated UTF-8; error texts are written (NUL-terminated, truncated) into the caller's
 * buffer and never contain a credential. Change anything here => bump FERRY_REGISTRY_ABI_VERSION. */
#ifndef FERRY_REMOTE_REGISTRY_MODULE_ABI_H
#define FERRY_REMOTE_REGISTRY_MODULE_ABI_H

#include <stddef.h> /* NOLINT(modernize-deprecated-headers): a C header */
#include <stdint.h> /* NOLINT(modernize-deprecated-headers) */

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_REGISTRY_ABI_VERSION 1U
#define FERRY_REGISTRY_GET_SYMBOL "ferry_registry_module_get"

struct ferry_registry_config {
  const char* scheme; /* "https" or "http" */
  const char* host;
  const char* repo;
  const char* auth;           /* base64 user:pass, or "" */
  const char* registry_token; /* or "" */
  int skip_verify;
  const char* const* ca_cert_files;
  size_t ca_cert_file_count;
  int64_t timeout_ms;
  int64_t connect_timeout_ms;
  int32_t retry_limit;
};

struct ferry_registry_module {
  uint32_t abi_version; /* FERRY_REGISTRY_ABI_VERSION */
  /* A client, or NULL with *code (an errno value) and err set. */
  void* (*create)(const struct ferry_registry_config* config, int* code, char* err, size_t err_size);
  /* Exactly `size` bytes of blob `digest` ("sha256:HEX") from `offset` into `out`, by
   * `deadline_ns` (CLOCK_MONOTONIC nanoseconds). 0, or an errno value with err set. Thread-safe. */
  int (*fetch)(void* client, const char* digest, uint64_t offset, void* out, size_t size, int64_t deadline_ns,
               char* err, size_t err_size);
  void (*destroy)(void* client);
};

typedef const struct ferry_registry_module* (*ferry_registry_module_get_fn)(uint32_t abi_version);

#ifdef __cplusplus
}
#endif

#endif
