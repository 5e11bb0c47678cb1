#include "http/error_status.h"

#include "http/json_errors.h"

namespace ferry::http {

int http_status_for_errno(int code) {
  switch (code) {
    case EINVAL:
    case EPROTO:
    case EBADMSG:
    case ENOTDIR:
    case EISDIR:
    case EOPNOTSUPP:
      return 400;
    case ENOENT:
      return 404;
    case EEXIST:
    case EADDRINUSE:
      return 409;
    case ENOSYS:
      return 501;
    case EAGAIN:
    case EBUSY:
      return 503;
    default:
      return 500;
  }
}

std::string_view http_error_code(int status) {
  switch (status) {
    case 400:
      return "BadRequest";
    case 404:
      return "NotFound";
    case 409:
      return "Conflict";
    case 501:
      return "NotImplemented";
    case 503:
      return "NotReady";
    default:
      return "InternalError";
  }
}

int errno_for_http_status(int status) {
  switch (status) {
    case 400:
      return EINVAL;
    case 404:
      return ENOENT;
    case 409:
      return EEXIST;
    case 501:
      return ENOSYS;
    case 503:
      return EBUSY;
    default:
      return EIO;
  }
}

HttpResponse error_response(const Error& e) {
  const int status = http_status_for_errno(e.code);
  return json_error(status, std::string(http_error_code(status)), e.message);
}

}  // namespace ferry::http
