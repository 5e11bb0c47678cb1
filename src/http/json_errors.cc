#include "http/json_errors.h"

#include <utility>

namespace ferry::http {
namespace {

// dump() throws on invalid UTF-8 by default; an error message must never fail to be sent.
std::string dump_safely(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

HttpResponse json_error(int status, std::string code, std::string message) {
  nlohmann::json body = {{"code", std::move(code)}, {"message", std::move(message)}};
  return HttpResponse{status, dump_safely(body), "application/json"};
}

HttpResponse json_ok(const nlohmann::json& body, int status) {
  return HttpResponse{status, dump_safely(body), "application/json"};
}

HttpResponse no_content() {
  return HttpResponse{204, {}, {}};
}

Result<nlohmann::json> parse_json_body(const HttpRequest& request) {
  if (request.body.empty()) return Error{EINVAL, "request body is empty; expected a JSON object"};
  // The parser itself is iterative, but destroying or dumping a value nests; a depth cap keeps
  // a hostile body from turning into deep recursion anywhere later.
  bool too_deep = false;
  auto limit_depth = [&too_deep](int depth, nlohmann::json::parse_event_t /*event*/, nlohmann::json& /*j*/) {
    if (depth > kMaxJsonDepth) too_deep = true;
    return !too_deep;
  };
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(request.body, limit_depth);
  } catch (const nlohmann::json::parse_error& e) {
    return Error{EINVAL, std::string("request body is not valid JSON: ") + e.what()};
  }
  if (too_deep) {
    return Error{EINVAL, "request body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels"};
  }
  if (!parsed.is_object()) {
    return Error{EINVAL, std::string("request body must be a JSON object, not ") + parsed.type_name()};
  }
  return parsed;
}

}  // namespace ferry::http
