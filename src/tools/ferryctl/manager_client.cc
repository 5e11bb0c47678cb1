#include "tools/ferryctl/manager_client.h"

#include <fmt/core.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "http/http_client.h"
#include "http/http_server.h"

namespace ferry::ctl {
namespace {

using nlohmann::json;

Error unreachable(const std::string& socket, int code, const std::string& why) {
  return Error{code, "cannot reach ferry-snapshotter at " + socket + ": " + why};
}

// The transport error, rewritten for the person at the terminal.
Error explain(const std::string& socket, const std::string& what, std::chrono::milliseconds timeout,
              const Error& e) {
  switch (e.code) {
    case ENOENT:
    case ENOTDIR:
      return unreachable(socket, e.code, "no such socket (is it running? see --socket)");
    case EACCES:
    case EPERM:
      return unreachable(socket, e.code, "permission denied: run as root or the socket's owner");
    case ECONNREFUSED:
      return unreachable(socket, e.code,
                         "connection refused: nothing listens on this socket (a stale socket file left by a "
                         "manager that is not running? start ferry-snapshotter, or see --socket)");
    case ETIMEDOUT:
      return Error{e.code, fmt::format("ferry-snapshotter at {} did not answer {} within {} s (is it hung? "
                                       "see its log)",
                                       socket, what, static_cast<double>(timeout.count()) / 1000.0)};
    case ECONNRESET:
      return Error{e.code, fmt::format("ferry-snapshotter at {} closed the connection without answering {} "
                                       "(did it exit? see its log)",
                                       socket, what)};
    default:
      return unreachable(socket, e.code, e.message);
  }
}

// Checked before connecting so that a wrong --socket is named precisely (connecting to a
// regular file would only say "connection refused").
Status precheck(const std::string& socket) {
  struct stat st {};
  if (::lstat(socket.c_str(), &st) != 0) {
    if (errno == EACCES) return Error{EACCES, "lstat"};
    if (errno == ENOENT || errno == ENOTDIR) return Error{ENOENT, "lstat"};
    return ok_status();  // let the connection attempt report it
  }
  if (!S_ISSOCK(st.st_mode)) {
    return unreachable(socket, ENOTSOCK, "not a socket (see --socket)");
  }
  return ok_status();
}

}  // namespace

Result<std::string> ManagerClient::call(const std::string& method, const std::string& path_and_query,
                                        const std::string& body, std::chrono::milliseconds timeout) const {
  const std::string what = method + " " + path_and_query;
  if (Status s = precheck(socket_); !s.ok()) {
    if (s.error().code == ENOTSOCK) return s.error();
    return explain(socket_, what, timeout, s.error());
  }
  auto response = http::http_request(socket_, method, path_and_query, body, timeout);
  if (!response.ok()) return explain(socket_, what, timeout, response.error());
  if (response->status >= 200 && response->status < 300) return std::move(response->body);

  // The API's errors are {"code", "message"}; the message is written for people.
  std::string message;
  json parsed = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && parsed.contains("message") && parsed["message"].is_string()) {
    message = parsed["message"].get<std::string>();
  } else {
    message = response->body.substr(0, 300);
    while (!message.empty() && (message.back() == '\n' || message.back() == '\r')) message.pop_back();
    if (message.empty()) message = "(no message)";
  }
  return Error{EIO, fmt::format("{} (HTTP {}{}{} from ferry-snapshotter)", message, response->status,
                                http::reason_phrase(response->status).empty() ? "" : " ",
                                http::reason_phrase(response->status))};
}

Result<nlohmann::json> ManagerClient::call_json(const std::string& method, const std::string& path_and_query,
                                                const std::string& body,
                                                std::chrono::milliseconds timeout) const {
  FERRY_ASSIGN(auto text, call(method, path_and_query, body, timeout));
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return Error{EPROTO, fmt::format("the answer of {} to {} {} is not JSON (is --socket really "
                                     "ferry-snapshotter's system socket?): {}",
                                     socket_, method, path_and_query, text.substr(0, 200))};
  }
  return parsed;
}

int fail(const Error& error) {
  std::fprintf(stderr, "ferryctl: error: %s\n", error.message.c_str());
  return 1;
}

void print_json(const nlohmann::json& value) {
  std::cout << value.dump(2, ' ', false, json::error_handler_t::replace) << '\n' << std::flush;
}

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(path, ec);
  if (ec) p = path;
  std::string out = p.lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

std::string cell(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return "-";
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return "-";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_boolean()) return it->get<bool>() ? "yes" : "no";
  return it->dump();
}

}  // namespace ferry::ctl
