// The one errno <-> HTTP status map of Ferry's APIs: ferryd's (docs/api.md) and the manager's
// (docs/manager-api.md) answer an Error with the same status and nydus-style code, and the
// clients of both read an error answer back into the same errno.
//
//   errno                                            status  code
//   EINVAL EPROTO EBADMSG ENOTDIR EISDIR EOPNOTSUPP  400     BadRequest      the request is wrong
//   ENOENT                                           404     NotFound        nothing there
//   EEXIST EADDRINUSE                                409     Conflict        already taken
//   ENOSYS                                           501     NotImplemented
//   EBUSY EAGAIN                                     503     NotReady        try again later
//   anything else                                    500     InternalError
//
// Thread-safety: pure functions.
#pragma once

#include <string_view>

#include "common/result.h"
#include "http/http_server.h"

namespace ferry::http {

int http_status_for_errno(int code);
// The nydus-style "code" of an error answer with `status` ("BadRequest", ...).
std::string_view http_error_code(int status);
// A client's reading of an error answer: the first errno of the status's row above (EIO for a
// status not in the table).
int errno_for_http_status(int status);
// {"code", "message": e.message} with the status of e.code.
HttpResponse error_response(const Error& e);

}  // namespace ferry::http
