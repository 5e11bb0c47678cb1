#include "daemon/api.h"

#include <spdlog/spdlog.h>

#include "http/error_status.h"
#include "http/json_errors.h"

namespace ferry::daemon {
namespace {

using http::HttpRequest;
using http::HttpResponse;

HttpResponse done(const Status& st) {
  return st.ok() ? http::no_content() : http::error_response(st.error());
}

HttpResponse bad_method(const HttpRequest& r) {
  return http::json_error(400, "BadRequest", "method " + r.method + " is not allowed on " + r.path);
}

struct MountBody {
  std::string source;
  std::string config;
};

Result<MountBody> parse_mount_body(const HttpRequest& r) {
  auto json = http::parse_json_body(r);
  if (!json.ok()) return std::move(json).error();
  MountBody body;
  auto source = json->find("source");
  if (source == json->end() || !source->is_string() || source->get<std::string>().empty()) {
    return Error{EINVAL, "body needs \"source\": the path of the image (bootstrap) to mount"};
  }
  body.source = source->get<std::string>();
  if (body.source.front() != '/') return Error{EINVAL, "\"source\" must be an absolute path"};
  auto fs_type = json->find("fs_type");
  if (fs_type != json->end()) {
    if (!fs_type->is_string()) return Error{EINVAL, "\"fs_type\" must be a string"};
    std::string t = fs_type->get<std::string>();
    if (t != "rafs" && t != "erofs") return Error{EINVAL, "unsupported fs_type '" + t + "' (use rafs)"};
  }
  auto config = json->find("config");
  if (config != json->end()) {
    // nydus sends the daemon config as a JSON string; an inline object is accepted too.
    if (config->is_string()) {
      body.config = config->get<std::string>();
    } else if (config->is_object()) {
      body.config = config->dump();
    } else {
      return Error{EINVAL, "\"config\" must be the daemon config as a JSON string"};
    }
  }
  return body;
}

std::string query(const HttpRequest& r, const std::string& key) {
  auto it = r.query.find(key);
  return it == r.query.end() ? std::string() : it->second;
}

HttpResponse handle_mount(Daemon& d, const HttpRequest& r) {
  std::string sub = query(r, "mountpoint");
  if (sub.empty()) return http::json_error(400, "BadRequest", "query parameter 'mountpoint' is required");
  if (r.method == "DELETE") return done(d.detach(sub));
  if (r.method != "POST" && r.method != "PUT") return bad_method(r);
  auto body = parse_mount_body(r);
  if (!body.ok()) return http::error_response(body.error());
  Status st = r.method == "POST" ? d.attach(sub, body->source, body->config)
                                 : d.replace(sub, body->source, body->config);
  return done(st);
}

HttpResponse route(Daemon& d, const HttpRequest& r) {
  const std::string& p = r.path;
  if (p == "/api/v1/daemon") {
    if (r.method != "GET") return bad_method(r);
    return http::json_ok(d.info());
  }
  if (p == "/api/v1/daemon/start") {
    if (r.method != "PUT") return bad_method(r);
    const std::string when = query(r, "when");
    if (when.empty()) return done(d.start());
    if (when == "predecessor-exits") return done(d.start_when_predecessor_exits());
    return http::json_error(400, "BadRequest", "unknown 'when=" + when + "' (only 'predecessor-exits')");
  }
  if (p == "/api/v1/daemon/exit") return r.method == "PUT" ? done(d.exit_keep_mount()) : bad_method(r);
  if (p == "/api/v1/daemon/fuse/sendfd") return r.method == "PUT" ? done(d.send_fd()) : bad_method(r);
  if (p == "/api/v1/daemon/fuse/takeover") return r.method == "PUT" ? done(d.takeover()) : bad_method(r);
  if (p == "/api/v1/mount") return handle_mount(d, r);
  if (p == "/api/v1/metrics") {
    if (r.method != "GET") return bad_method(r);
    auto m = d.metrics(query(r, "id"));
    if (!m.ok()) return http::error_response(m.error());
    return http::json_ok(*m);
  }
  if (p == "/api/v1/metrics/inflight") {
    if (r.method != "GET") return bad_method(r);
    auto list = d.inflight();
    if (list.empty()) return http::no_content();
    return http::json_ok(list);
  }
  return http::json_error(404, "NotFound", "no such endpoint: " + r.method + " " + p);
}

}  // namespace

http::HttpHandler make_api_handler(Daemon& daemon) {
  return [&daemon](const HttpRequest& r) {
    HttpResponse resp = route(daemon, r);
    spdlog::debug("api {} {} -> {}", r.method, r.path, resp.status);
    return resp;
  };
}

}  // namespace ferry::daemon
