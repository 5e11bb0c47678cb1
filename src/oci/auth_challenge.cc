#include "oci/auth_challenge.h"

#include <cctype>

namespace ferry::oci {

namespace {

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

void skip_space(std::string_view s, size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
}

}  // namespace

std::optional<AuthChallenge> parse_auth_challenge(std::string_view h) {
  size_t i = 0;
  skip_space(h, i);
  const size_t scheme_start = i;
  while (i < h.size() && is_token_char(h[i])) ++i;
  if (i == scheme_start) return std::nullopt;
  AuthChallenge c;
  c.scheme = lower(h.substr(scheme_start, i - scheme_start));
  while (i < h.size()) {
    skip_space(h, i);
    while (i < h.size() && (h[i] == ',' || h[i] == ' ')) ++i;
    const size_t name_start = i;
    while (i < h.size() && is_token_char(h[i])) ++i;
    if (i == name_start) break;
    const std::string name = lower(h.substr(name_start, i - name_start));
    skip_space(h, i);
    if (i >= h.size() || h[i] != '=') break;  // a second challenge (or token68): stop here
    ++i;
    skip_space(h, i);
    std::string value;
    if (i < h.size() && h[i] == '"') {
      ++i;
      while (i < h.size() && h[i] != '"') {
        if (h[i] == '\\' && i + 1 < h.size()) ++i;
        value += h[i++];
      }
      if (i < h.size()) ++i;  // closing quote
    } else {
      while (i < h.size() && h[i] != ',' && h[i] != ' ') value += h[i++];
    }
    c.params[name] = std::move(value);
  }
  return c;
}

}  // namespace ferry::oci
