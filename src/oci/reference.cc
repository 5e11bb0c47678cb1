#include "oci/reference.h"

#include <cctype>
#include <charconv>

namespace ferry::oci {

namespace {

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// path-component := [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
bool is_valid_component(std::string_view c) {
  if (c.empty() || !is_lower_alnum(c.front()) || !is_lower_alnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (is_lower_alnum(c[i])) {
      ++i;
      continue;
    }
    // A separator run: ".", "_", "__" or "-"+, followed by an alphanumeric (the back is one).
    size_t j = i;
    while (j < c.size() && !is_lower_alnum(c[j])) ++j;
    const std::string_view sep = c.substr(i, j - i);
    const bool ok = sep == "." || sep == "_" || sep == "__" || sep.find_first_not_of('-') == std::string_view::npos;
    if (!ok) return false;
    i = j;
  }
  return true;
}

bool is_valid_hostname(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  if (h.front() == '[') {  // IPv6 literal
    if (h.back() != ']' || h.size() < 3) return false;
    for (char c : h.substr(1, h.size() - 2)) {
      if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.')) return false;
    }
    return true;
  }
  for (char c : h) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-')) return false;
  }
  return h.front() != '-' && h.front() != '.' && h.back() != '-' && h.back() != '.';
}

Status validate_host(std::string_view host) {
  std::string_view name = host;
  std::string_view port;
  const size_t bracket = host.rfind(']');
  const size_t colon = host.rfind(':');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    name = host.substr(0, colon);
    port = host.substr(colon + 1);
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      return Error{EINVAL, "invalid port '" + std::string(port) + "' (expected 1-65535)"};
    }
  }
  if (!is_valid_hostname(name)) return Error{EINVAL, "invalid registry host '" + std::string(name) + "'"};
  return {};
}

}  // namespace

bool is_valid_repository(std::string_view repo) {
  if (repo.empty() || repo.size() > 255) return false;
  size_t start = 0;
  while (true) {
    const size_t slash = repo.find('/', start);
    if (!is_valid_component(repo.substr(start, slash == std::string_view::npos ? slash : slash - start))) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

bool is_valid_tag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128) return false;
  const auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  if (!word(tag.front())) return false;
  for (char c : tag) {
    if (!(word(c) || c == '.' || c == '-')) return false;
  }
  return true;
}

Result<ImageReference> ImageReference::parse(std::string_view text) {
  const std::string shown(text.substr(0, 300));
  const auto bad = [&](const std::string& why) { return Error{EINVAL, "invalid image reference '" + shown + "': " + why}; };
  ImageReference ref;
  if (text.substr(0, 4) == "oci:") {
    ref.kind = Kind::kLayout;
    const std::string_view rest = text.substr(4);
    const size_t colon = rest.find(':');
    ref.layout_dir = std::string(rest.substr(0, colon));
    if (ref.layout_dir.empty()) return bad("expected oci:DIR[:TAG]");
    if (colon != std::string_view::npos) {
      ref.tag = std::string(rest.substr(colon + 1));
      if (!is_valid_tag(ref.tag)) return bad("invalid tag '" + ref.tag + "'");
    }
    return ref;
  }
  if (text.empty()) return bad("empty");
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return bad("contains a space or control character");
  }
  std::string_view rest = text;
  if (const size_t at = rest.find('@'); at != std::string_view::npos) {
    auto digest = Digest::parse(rest.substr(at + 1));
    if (!digest) return bad(digest.error().message);
    ref.digest = std::move(digest).value();
    rest = rest.substr(0, at);
  }
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return bad("no registry host: expected HOST[:PORT]/REPO[:TAG|@sha256:DIGEST] (Docker Hub short names are not supported; "
               "write e.g. docker.io/library/NAME)");
  }
  const std::string_view host = rest.substr(0, slash);
  const bool looks_like_host = host.find_first_of(".:[") != std::string_view::npos || host == "localhost";
  if (!looks_like_host) {
    return bad("'" + std::string(host) + "' is not a registry host (a host has a '.', a ':port' or is 'localhost')");
  }
  if (auto st = validate_host(host); !st) return bad(st.error().message);
  ref.host = std::string(host);
  std::string_view path = rest.substr(slash + 1);
  const size_t last_slash = path.rfind('/');
  const size_t colon = path.rfind(':');
  if (colon != std::string_view::npos && (last_slash == std::string_view::npos || colon > last_slash)) {
    ref.tag = std::string(path.substr(colon + 1));
    if (!is_valid_tag(ref.tag)) return bad("invalid tag '" + ref.tag + "'");
    path = path.substr(0, colon);
  }
  if (!is_valid_repository(path)) {
    return bad("invalid repository '" + std::string(path) + "' (lowercase components [a-z0-9] joined by '/', '.', '_', '-')");
  }
  ref.repository = std::string(path);
  if (ref.tag.empty() && !ref.digest.valid()) ref.tag = "latest";
  return ref;
}

std::string ImageReference::manifest_reference() const { return digest.valid() ? digest.str() : tag; }

std::string ImageReference::str() const {
  if (kind == Kind::kLayout) return "oci:" + layout_dir + (tag.empty() ? "" : ":" + tag);
  std::string out = host + "/" + repository;
  if (!tag.empty()) out += ":" + tag;
  if (digest.valid()) out += "@" + digest.str();
  return out;
}

}  // namespace ferry::oci
