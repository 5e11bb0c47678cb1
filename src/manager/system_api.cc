#include "manager/system_api.h"

#include <ctime>
#include <nlohmann/json.hpp>

#include "http/error_status.h"
#include "http/json_errors.h"

namespace ferry::manager {
namespace {

using http::HttpRequest;
using http::HttpResponse;
using http::json_error;
using http::json_ok;
using nlohmann::json;

// One map for ferryd and the manager (http/error_status.h).
HttpResponse from_error(const Error& e) {
  return http::error_response(e);
}

HttpResponse method_not_allowed(const HttpRequest& r) {
  return json_error(400, "BadRequest", "method " + r.method + " is not allowed on " + r.path);
}

std::string iso_time(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

Result<std::string> string_field(const json& body, const char* key, bool required) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) {
    if (required) return Error{EINVAL, std::string("missing field '") + key + "'"};
    return std::string();
  }
  if (!it->is_string()) return Error{EINVAL, std::string("field '") + key + "' must be a string"};
  return it->get<std::string>();
}

HttpResponse post_mount(DaemonManager& m, const HttpRequest& r) {
  auto body = http::parse_json_body(r);
  if (!body) return json_error(400, "BadRequest", body.error().message);
  MountRequest req;
  auto mp = string_field(*body, "mountpoint", true);
  if (!mp) return from_error(mp.error());
  auto bs = string_field(*body, "bootstrap", true);
  if (!bs) return from_error(bs.error());
  req.mountpoint = *mp;
  req.bootstrap = *bs;
  auto cfg = body->find("config");
  if (cfg == body->end() || cfg->is_null()) {
    req.config_json = "{}";
  } else if (cfg->is_object()) {
    req.config_json = cfg->dump();
  } else if (cfg->is_string()) {
    req.config_json = cfg->get<std::string>();
  } else {
    return json_error(400, "BadRequest", "field 'config' must be an object or a JSON string");
  }
  auto answer = m.mount(req);
  if (!answer) return from_error(answer.error());
  return json_ok({{"daemon_id", answer->daemon_id}, {"mountpoint", answer->mountpoint}}, 201);
}

HttpResponse mounts(DaemonManager& m, const HttpRequest& r) {
  if (r.method == "POST") return post_mount(m, r);
  if (r.method == "DELETE") {
    auto it = r.query.find("mountpoint");
    if (it == r.query.end() || it->second.empty()) {
      return json_error(400, "BadRequest", "missing query argument 'mountpoint'");
    }
    auto st = m.umount(it->second);
    if (!st) return from_error(st.error());
    return http::no_content();
  }
  if (r.method == "GET") {
    json out = json::array();
    for (const auto& v : m.mounts()) {
      out.push_back({{"mountpoint", v.mountpoint}, {"bootstrap", v.bootstrap}, {"daemon_id", v.daemon_id}});
    }
    return json_ok(out);
  }
  return method_not_allowed(r);
}

HttpResponse daemons(DaemonManager& m) {
  json out = json::array();
  for (const auto& v : m.daemons()) {
    const auto& d = v.record;
    json instances = json::object();
    for (const auto& mnt : d.mounts) {
      instances[mnt.mountpoint] = {
          {"mountpoint", mnt.mountpoint}, {"bootstrap", mnt.bootstrap}, {"daemon_path", mnt.daemon_path}};
    }
    out.push_back({{"id", d.id},
                   {"pid", d.pid},
                   {"api_socket", d.api_socket},
                   {"supervisor_path", d.supervisor_path},
                   {"mountpoint", d.mountpoint},
                   {"instances", instances},
                   {"state", v.state},
                   {"shared", d.shared},
                   {"binary", d.binary},
                   {"version", d.version},
                   {"recover_policy", std::string(to_string(d.policy))},
                   {"failovers", d.failovers},
                   {"restarts", d.restarts},
                   {"upgrades", d.upgrades},
                   {"standby_pid", v.standby_pid}});
  }
  return json_ok(out);
}

HttpResponse records(DaemonManager& m, const HttpRequest& r) {
  size_t limit = 1000;
  if (auto it = r.query.find("limit"); it != r.query.end()) {
    try {
      size_t pos = 0;
      long long v = std::stoll(it->second, &pos);
      if (pos != it->second.size() || v <= 0) throw std::invalid_argument("limit");
      limit = static_cast<size_t>(v);
    } catch (const std::exception&) {
      return json_error(400, "BadRequest", "limit must be a positive integer, got '" + it->second + "'");
    }
  }
  std::string daemon;
  if (auto it = r.query.find("daemon"); it != r.query.end()) daemon = it->second;
  auto events = m.records(limit, daemon);
  if (!events) return from_error(Error{EIO, events.error().message});
  json out = json::array();
  for (const auto& e : *events) {
    out.push_back({{"seq", e.seq},
                   {"time", iso_time(e.time_ms)},
                   {"daemon_id", e.daemon_id},
                   {"event", std::string(to_string(e.kind))},
                   {"old_pid", e.old_pid},
                   {"new_pid", e.new_pid},
                   {"duration_ms", e.duration_ms},
                   {"ok", e.ok},
                   {"detail", e.detail}});
  }
  return json_ok(out);
}

HttpResponse upgrade(DaemonManager& m, const HttpRequest& r) {
  if (r.method != "PUT") return method_not_allowed(r);
  auto body = http::parse_json_body(r);
  if (!body) return json_error(400, "BadRequest", body.error().message);
  UpgradeRequest req;
  auto path = string_field(*body, "nydusd_path", true);
  if (!path) return from_error(path.error());
  auto version = string_field(*body, "version", false);
  if (!version) return from_error(version.error());
  auto policy = string_field(*body, "policy", false);
  if (!policy) return from_error(policy.error());
  req.nydusd_path = *path;
  req.version = *version;
  req.policy = *policy;
  auto answer = m.upgrade(req);
  if (!answer) return from_error(answer.error());
  json steps = json::array();
  for (const auto& s : answer->daemons) {
    steps.push_back(
        {{"id", s.id}, {"old_pid", s.old_pid}, {"new_pid", s.new_pid}, {"duration_ms", s.duration_ms}});
  }
  return json_ok({{"nydusd_path", answer->nydusd_path}, {"version", answer->version}, {"daemons", steps}});
}

HttpResponse metrics(DaemonManager& m, const HttpRequest& r) {
  if (r.method != "GET") return method_not_allowed(r);
  HttpResponse resp;
  resp.body = m.metrics_text();
  resp.content_type = "text/plain; version=0.0.4";
  return resp;
}

}  // namespace

HttpResponse SystemApi::handle(const HttpRequest& r) {
  try {
    if (r.path == "/api/v1/mounts") return mounts(manager_, r);
    if (r.path == "/api/v1/daemons") {
      if (r.method != "GET") return method_not_allowed(r);
      return daemons(manager_);
    }
    if (r.path == "/api/v1/daemons/records") {
      if (r.method != "GET") return method_not_allowed(r);
      return records(manager_, r);
    }
    if (r.path == "/api/v1/nydusd/upgrade" || r.path == "/api/v1/daemons/upgrade")
      return upgrade(manager_, r);
    if (r.path == "/metrics" || r.path == "/api/v1/metrics") return metrics(manager_, r);
    return json_error(404, "NotFound", "no endpoint " + r.path);
  } catch (const std::exception& e) {
    return json_error(500, "InternalError", std::string("unexpected error: ") + e.what());
  }
}

HttpResponse SystemApi::handle_metrics_only(const HttpRequest& r) {
  try {
    if (r.path == "/metrics") return metrics(manager_, r);
    return json_error(404, "NotFound", "only /metrics is served here");
  } catch (const std::exception& e) {
    return json_error(500, "InternalError", std::string("unexpected error: ") + e.what());
  }
}

}  // namespace ferry::manager
