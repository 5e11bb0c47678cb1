// SystemApi: ferry-snapshotter's HTTP handler (docs/manager-api.md), a thin translation between
// HTTP requests and DaemonManager calls. It validates request shapes (400), maps the manager's
// error codes to statuses (EINVAL 400, EEXIST 409, ENOENT 404, others 500) and never lets an
// exception escape.
//
// Thread-safety: handle() is called concurrently by HttpServer's connection threads; it keeps
// no state of its own. The manager must outlive it.
#pragma once

#include "http/http_server.h"
#include "manager/daemon_manager.h"

namespace ferry::manager {

class SystemApi {
 public:
  explicit SystemApi(DaemonManager& manager) : manager_(manager) {}
  http::HttpResponse handle(const http::HttpRequest& request);
  // Only GET /metrics (for the optional TCP listener); 404 for everything else.
  http::HttpResponse handle_metrics_only(const http::HttpRequest& request);

 private:
  DaemonManager& manager_;
};

}  // namespace ferry::manager
