// TokenCache and fetch_token: the Bearer half of registry auth (the distribution token spec).
//
// fetch_token() asks a challenge's realm for a token: GET realm?service=S&scope=X, with Basic
// credentials when there are any, and reads `token` (or `access_token`) and `expires_in`
// (60 s when absent, as the spec says). TokenCache keeps tokens per scope and hands one out
// only while it is fresh: it counts as expired a margin before its expiry (a fifth of its
// lifetime, at most 30 s), so a request never goes out with a token about to lapse.
//
// Thread safety: TokenCache is safe for concurrent use. Tokens are secrets: never logged,
// never in a message.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "common/result.h"
#include "oci/auth_challenge.h"
#include "oci/credentials.h"
#include "oci/http_transport.h"

namespace ferry::oci {

struct Token {
  std::string value;
  Clock::time_point refresh_at;  // when it stops being handed out
};

class TokenCache {
 public:
  std::optional<std::string> get(const std::string& scope) const;
  void put(const std::string& scope, const std::string& value, std::chrono::seconds lifetime);
  // Drops the token of `scope` only if it is still `value` (one that a registry refused), so a
  // fresh token another thread fetched meanwhile stays.
  void drop_if(const std::string& scope, const std::string& value);

 private:
  mutable std::mutex mu_;
  std::map<std::string, Token> tokens_;
};

struct FetchedToken {
  std::string value;
  std::chrono::seconds lifetime{60};
};

// `scope` is what the client needs ("repository:ns/name:pull,push"); the challenge's own scope
// is asked for too when it differs. EACCES when the realm refuses, EPROTO when it answers
// without a token, EINVAL when the challenge has no realm.
Result<FetchedToken> fetch_token(const HttpTransport& transport, const AuthChallenge& challenge,
                                 const std::string& scope, const Credentials& credentials, Deadline deadline);

}  // namespace ferry::oci
