// The one object that differs between ferryd and ferryd-next: the package version the running
// executable reports (--version, GET /api/v1/daemon, the saved state). Compiled once per
// variant with its own FERRY_PACKAGE_VERSION so the daemon library itself is compiled once.
#include "common/build_info.h"

#ifndef FERRY_PACKAGE_VERSION
#error "FERRY_PACKAGE_VERSION must be defined by the build (see src/daemon/CMakeLists.txt)"
#endif

namespace ferry::build_info {
const char* package_version() noexcept {
  return FERRY_PACKAGE_VERSION;
}
}  // namespace ferry::build_info
