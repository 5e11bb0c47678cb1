#include "manager/daemon_client.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

#include "http/error_status.h"
#include "http/http_client.h"

namespace ferry::manager {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// The daemon's own explanation: {"message"} of a JSON error, else the (shortened) body.
std::string daemon_message(const std::string& body) {
  auto j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    auto m = j.find("message");
    if (m != j.end() && m->is_string()) return m->get<std::string>();
  }
  std::string text = body.substr(0, 512);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

DaemonClient::DaemonClient(std::string api_socket, std::string label)
    : socket_(std::move(api_socket)), label_(std::move(label)) {
  if (label_.empty()) label_ = socket_;
}

namespace {

// One request; a transport failure keeps its errno, a non-2xx answer becomes an Error.
Result<http::HttpResponse> call(const std::string& socket, const std::string& label, const std::string& what,
                                const std::string& method, const std::string& path, const std::string& body,
                                std::chrono::milliseconds timeout) {
  std::string prefix = "ferryd " + label + ": " + what;
  auto r = http::http_request(socket, method, path, body, timeout);
  if (!r.ok()) return std::move(r).error().context(prefix);
  if (r->status < 200 || r->status > 299) {
    std::string msg = daemon_message(r->body);
    return Error{http::errno_for_http_status(r->status),
                 prefix + ": " + std::to_string(r->status) + (msg.empty() ? std::string() : " " + msg)};
  }
  return std::move(r).value();
}

Status done(Result<http::HttpResponse> r) {
  if (!r.ok()) return std::move(r).error();
  return ok_status();
}

}  // namespace

Result<DaemonInfo> DaemonClient::info(std::chrono::milliseconds timeout) const {
  FERRY_ASSIGN(http::HttpResponse r, call(socket_, label_, "info", "GET", "/api/v1/daemon", {}, timeout));
  auto j = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& why) {
    return Error{EIO,
                 "ferryd " + label_ + ": info: unexpected answer (" + why + "): " + r.body.substr(0, 256)};
  };
  if (!j.is_object()) return bad("not a JSON object");
  DaemonInfo info;
  auto str = [&j](const json& obj, const char* key) {
    auto it = obj.find(key);
    return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  info.state = str(j, "state");
  if (info.state.empty()) return bad("no \"state\"");
  info.id = str(j, "id");
  if (auto v = j.find("version"); v != j.end() && v->is_object()) {
    info.version = str(*v, "package_ver");
    info.git_commit = str(*v, "git_commit");
  }
  if (auto p = j.find("pid"); p != j.end() && p->is_number_integer()) info.pid = p->get<int64_t>();
  return info;
}

Result<DaemonInfo> DaemonClient::wait_state(const std::string& state,
                                            std::chrono::milliseconds timeout) const {
  auto start = Clock::now();
  auto deadline = start + timeout;
  auto pause = std::chrono::microseconds(200);
  std::string last;  // the last state seen or the last error
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    // Each probe gets what is left (at least 1 ms, at most the usual 2 s) so a hung daemon
    // cannot hold the caller past its deadline by much.
    auto per_call = std::clamp(left, std::chrono::milliseconds(1), std::chrono::milliseconds(2000));
    auto r = info(per_call);
    if (r.ok()) {
      if (r->state == state) return std::move(r).value();
      last = "last state " + r->state;
    } else if (!(r.error().code == ETIMEDOUT && per_call < std::chrono::milliseconds(2000) &&
                 !last.empty())) {
      // A probe cut short by our own deadline says nothing new: keep what was seen before.
      last = "last error: " + r.error().message;
    }
    auto now = Clock::now();
    if (now >= deadline) break;
    std::this_thread::sleep_for(std::min<Clock::duration>(pause, deadline - now));
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(5));
  }
  return Error{ETIMEDOUT, "ferryd " + label_ + ": did not reach " + state + " within " +
                              std::to_string(timeout.count()) + " ms (" + last + ")"};
}

Status DaemonClient::start(std::chrono::milliseconds timeout) const {
  return done(call(socket_, label_, "start", "PUT", "/api/v1/daemon/start", {}, timeout));
}

Status DaemonClient::start_when_predecessor_exits(std::chrono::milliseconds timeout) const {
  return done(call(socket_, label_, "start on the predecessor's exit", "PUT",
                   "/api/v1/daemon/start?when=predecessor-exits", {}, timeout));
}

Status DaemonClient::exit(std::chrono::milliseconds timeout) const {
  return done(call(socket_, label_, "exit", "PUT", "/api/v1/daemon/exit", {}, timeout));
}

Status DaemonClient::sendfd(std::chrono::milliseconds timeout) const {
  return done(call(socket_, label_, "sendfd", "PUT", "/api/v1/daemon/fuse/sendfd", {}, timeout));
}

Status DaemonClient::takeover(std::chrono::milliseconds timeout) const {
  return done(call(socket_, label_, "takeover", "PUT", "/api/v1/daemon/fuse/takeover", {}, timeout));
}

Status DaemonClient::attach(const std::string& sub, const std::string& bootstrap,
                            const std::string& config_json, std::chrono::milliseconds timeout) const {
  json body = {{"source", bootstrap}, {"fs_type", "rafs"}, {"config", config_json}};
  return done(call(socket_, label_, "attach " + sub, "POST",
                   "/api/v1/mount?mountpoint=" + http::url_encode(sub),
                   body.dump(-1, ' ', false, json::error_handler_t::replace), timeout));
}

Result<std::string> DaemonClient::metrics(std::chrono::milliseconds timeout) const {
  FERRY_ASSIGN(http::HttpResponse r, call(socket_, label_, "metrics", "GET", "/api/v1/metrics", {}, timeout));
  return std::move(r.body);
}

Status DaemonClient::detach(const std::string& sub, std::chrono::milliseconds timeout) const {
  return done(call(socket_, label_, "detach " + sub, "DELETE",
                   "/api/v1/mount?mountpoint=" + http::url_encode(sub), {}, timeout));
}

}  // namespace ferry::manager
