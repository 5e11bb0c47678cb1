#include "common/result.h"

#include <cstring>

namespace ferry {

Error errno_error(int err, const std::string& what) {
  return {err, what + ": " + std::strerror(err)};
}

Error errno_error(const std::string& what) {
  return errno_error(errno, what);
}

}  // namespace ferry
