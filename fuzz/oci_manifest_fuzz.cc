// libFuzzer target for the parsers of src/oci that read what a registry, an image layout or a
// user hands over: manifests and indexes, image configs, image references and
// WWW-Authenticate headers. The first byte picks the parser (and, for manifests, the
// Content-Type it is told). Properties beyond "no crash, no sanitizer report":
//   - an accepted manifest serialises to bytes that parse again to the same serialisation;
//   - an accepted config keeps its bytes, and after set_diff_ids still parses with those ids;
//   - an accepted reference prints to text that parses back to the same reference.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "oci/auth_challenge.h"
#include "oci/image_config.h"
#include "oci/manifest.h"
#include "oci/media_types.h"
#include "oci/reference.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

constexpr std::string_view kContentTypes[] = {
    "", ferry::oci::media_type::kOciManifest, ferry::oci::media_type::kOciIndex,
    ferry::oci::media_type::kDockerManifest, ferry::oci::media_type::kDockerManifestList, "application/json"};

template <typename T>
void check_round_trip(const T& m) {
  const std::string once = ferry::oci::serialize(m);
  auto again = ferry::oci::parse_manifest(once);
  check(again.ok());
  check(std::holds_alternative<T>(*again));
  check(ferry::oci::serialize(std::get<T>(*again)) == once);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (selector % 4) {
    case 0: {
      const auto ct = kContentTypes[(selector / 4) % std::size(kContentTypes)];
      auto m = ferry::oci::parse_manifest(input, ct);
      if (m.ok()) {
        if (const auto* im = std::get_if<ferry::oci::ImageManifest>(&*m)) check_round_trip(*im);
        if (const auto* ix = std::get_if<ferry::oci::ImageIndex>(&*m)) {
          check_round_trip(*ix);
          (void)ferry::oci::select_platform(*ix);
        }
      }
      break;
    }
    case 1: {
      auto c = ferry::oci::ImageConfig::parse(std::string(input));
      if (c.ok()) {
        check(c->bytes() == input);
        auto ids = c->diff_ids();
        ids.push_back(ferry::oci::Digest::of(input));
        c->set_diff_ids(ids);
        auto again = ferry::oci::ImageConfig::parse(c->bytes());
        check(again.ok());
        check(again->diff_ids() == ids);
      }
      break;
    }
    case 2: {
      auto r = ferry::oci::ImageReference::parse(input);
      if (r.ok()) {
        auto again = ferry::oci::ImageReference::parse(r->str());
        check(again.ok());
        check(again->str() == r->str());
        check(again->host == r->host && again->repository == r->repository && again->layout_dir == r->layout_dir);
      }
      break;
    }
    default:
      (void)ferry::oci::parse_auth_challenge(input);
      break;
  }
  return 0;
}
