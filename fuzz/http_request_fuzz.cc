// libFuzzer target for the HTTP request parser (src/http/request_parser.h): every byte a client
// sends to ferryd's or ferry-snapshotter's API socket goes through it.
//
// The first input byte picks how the rest is cut into reads (as a socket would deliver it), so
// requests split at every boundary are exercised. Properties checked beyond "no crash, no
// sanitizer report":
//   - a delivered request's body never exceeds the body limit;
//   - an error is one of the statuses the server promises (400, 413, 414, 431), and the parser
//     stays in error afterwards;
//   - the parser never holds more unparsed bytes than it was given.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "http/request_parser.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

constexpr size_t kMaxBody = 4096;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  ferry::http::RequestParser parser(kMaxBody);
  size_t given = 0;
  bool failed = false;
  auto drain = [&] {
    while (true) {
      const auto step = parser.next();
      if (step == ferry::http::RequestParser::Step::kRequest) {
        check(!failed);
        const auto request = parser.take_request();
        check(request.body.size() <= kMaxBody);
        continue;
      }
      if (step == ferry::http::RequestParser::Step::kError) {
        const int status = parser.error_status();
        check(status == 400 || status == 413 || status == 414 || status == 431);
        check(!parser.error_message().empty());
        failed = true;
        check(parser.next() == ferry::http::RequestParser::Step::kError);
      }
      return;  // kNeedMore, kContinue (the server answers it and reads on), or kError
    }
  };
  while (!input.empty() && !failed) {
    const std::string_view piece = input.substr(0, chunk);
    input.remove_prefix(piece.size());
    parser.append(piece);
    given += piece.size();
    check(parser.buffered() <= given);
    drain();
  }
  if (!failed) {
    parser.end_of_input();
    drain();
  }
  return 0;
}
