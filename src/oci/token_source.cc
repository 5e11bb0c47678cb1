#include "oci/token_source.h"

#include <nlohmann/json.hpp>

#include "oci/base64.h"

namespace ferry::oci {

std::optional<std::string> TokenCache::get(const std::string& scope) const {
  std::lock_guard lock(mu_);
  const auto it = tokens_.find(scope);
  if (it == tokens_.end() || Clock::now() >= it->second.refresh_at) return std::nullopt;
  return it->second.value;
}

void TokenCache::put(const std::string& scope, const std::string& value, std::chrono::seconds lifetime) {
  const auto margin = std::min<std::chrono::milliseconds>(std::chrono::seconds(30), lifetime / 5);
  std::lock_guard lock(mu_);
  tokens_[scope] = Token{value, Clock::now() + lifetime - margin};
}

void TokenCache::drop_if(const std::string& scope, const std::string& value) {
  std::lock_guard lock(mu_);
  const auto it = tokens_.find(scope);
  if (it != tokens_.end() && it->second.value == value) tokens_.erase(it);
}

Result<FetchedToken> fetch_token(const HttpTransport& transport, const AuthChallenge& challenge,
                                 const std::string& scope, const Credentials& credentials, Deadline deadline) {
  const std::string realm = challenge.param("realm");
  if (realm.empty()) return Error{EINVAL, "the registry's Bearer challenge names no realm"};
  if (realm.substr(0, 7) != "http://" && realm.substr(0, 8) != "https://") {
    return Error{EINVAL, "the registry's token realm '" + realm + "' is not an http(s) URL"};
  }
  std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
  const std::string service = challenge.param("service");
  if (!service.empty()) url += "service=" + HttpTransport::escape(service) + "&";
  url += "scope=" + HttpTransport::escape(scope);
  const std::string challenge_scope = challenge.param("scope");
  if (!challenge_scope.empty() && challenge_scope != scope) url += "&scope=" + HttpTransport::escape(challenge_scope);
  HttpRequest request;
  request.url = url;
  if (credentials.has_basic()) {
    request.headers.push_back("Authorization: Basic " + base64_encode(credentials.username + ":" + credentials.password));
  }
  StringSink sink(1 << 20);
  const std::string what = "token realm " + realm;
  FERRY_ASSIGN(const HttpResponse response, transport.perform(request, &sink, deadline));
  if (response.status == 401 || response.status == 403) {
    return Error{EACCES, what + " refused " + (credentials.has_basic() ? "the credentials" : "an anonymous request") +
                             " (HTTP " + std::to_string(response.status) + ")"};
  }
  if (response.status != 200) return Error{EPROTO, what + ": HTTP " + std::to_string(response.status)};
  const auto j = nlohmann::json::parse(sink.bytes(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error{EPROTO, what + ": the answer is not a JSON object"};
  FetchedToken token;
  for (const auto* key : {"token", "access_token"}) {
    const auto it = j.find(key);
    if (it != j.end() && it->is_string() && !it->get<std::string>().empty()) {
      token.value = it->get<std::string>();
      break;
    }
  }
  if (token.value.empty()) return Error{EPROTO, what + ": the answer holds no token"};
  if (const auto e = j.find("expires_in"); e != j.end() && e->is_number_integer() && e->get<int64_t>() > 0) {
    token.lifetime = std::chrono::seconds(std::min<int64_t>(e->get<int64_t>(), 24 * 3600));
  }
  return token;
}

}  // namespace ferry::oci
