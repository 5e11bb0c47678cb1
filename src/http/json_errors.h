// JSON answers for HTTP handlers: the nydus-style error body and the usual success shapes.
//
// Nydus clients (nydus-snapshotter, nydusctl) expect success as 200 + JSON or 204 without a
// body, and every error as {"code": "...", "message": "..."} with a 4xx/5xx status. These
// helpers build exactly that. They never throw: text that is not valid UTF-8 (a path, say) is
// sent with U+FFFD in place of the bad bytes rather than failing the response.
//
// All functions are pure and thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/result.h"
#include "http/http_server.h"

namespace ferry::http {

// {"code": code, "message": message} with `status`.
HttpResponse json_error(int status, std::string code, std::string message);

// `body` serialised compactly, with `status`.
HttpResponse json_ok(const nlohmann::json& body, int status = 200);

// 204, empty body, no content type.
HttpResponse no_content();

// The request body as a JSON object. Errors (code EINVAL, a message fit for a 400 answer):
// empty body, not JSON (with the parser's position), nested deeper than kMaxJsonDepth, or JSON
// that is not an object (naming what it is).
inline constexpr int kMaxJsonDepth = 64;
Result<nlohmann::json> parse_json_body(const HttpRequest& request);

}  // namespace ferry::http
