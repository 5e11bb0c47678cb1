// The ferryd HTTP API (nydusd's paths and JSON), as a handler for HttpServer. Each route
// validates its input fully before calling the Daemon; errors answer
// {"code": "...", "message": "..."} with the status http::http_status_for_errno() gives (http/error_status.h).
// Thread-safety: the handler may run on many connections at once; Daemon serialises.
#pragma once

#include "daemon/daemon.h"
#include "http/http_server.h"

namespace ferry::daemon {

http::HttpHandler make_api_handler(Daemon& daemon);

}  // namespace ferry::daemon
