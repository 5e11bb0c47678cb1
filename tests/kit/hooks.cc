#include "kit/hooks.h"

#include <cstdio>

namespace ferry::testkit {
namespace {
Hooks g_hooks;
}  // namespace

void install_hooks(Hooks hooks) {
  g_hooks = hooks;
}

void report_failure(const std::string& what) {
  if (g_hooks.fail != nullptr) {
    g_hooks.fail(what);
  } else {
    std::fprintf(stderr, "failure: %s\n", what.c_str());
  }
}

bool test_failed() {
  return g_hooks.failed != nullptr && g_hooks.failed();
}

}  // namespace ferry::testkit
