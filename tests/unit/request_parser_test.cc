// RequestParser (src/http/request_parser.h) without sockets: requests cut at every byte,
// pipelining, the limits and their statuses, "100 Continue", the decoding of paths and queries.
#include "http/request_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ferry::http {
namespace {

using Step = RequestParser::Step;

// Feeds `wire` in pieces of `piece` bytes; collects the requests until the input ends.
std::vector<HttpRequest> parse_all(const std::string& wire, size_t piece, size_t max_body = 1 << 20,
                                   int* error = nullptr) {
  RequestParser parser(max_body);
  std::vector<HttpRequest> out;
  auto drain = [&] {
    while (true) {
      const Step step = parser.next();
      if (step == Step::kRequest) {
        out.push_back(parser.take_request());
        continue;
      }
      if (step == Step::kError && error != nullptr) *error = parser.error_status();
      return step != Step::kError;
    }
  };
  for (size_t at = 0; at < wire.size(); at += piece) {
    parser.append(std::string_view(wire).substr(at, piece));
    if (!drain()) return out;
  }
  parser.end_of_input();
  drain();
  return out;
}

TEST(RequestParser, ParsesPipelinedRequestsWhateverTheReadBoundaries) {
  const std::string wire =
      "GET /api/v1/daemon HTTP/1.1\r\nHost: x\r\n\r\n"
      "PUT /api/v1/mount?mountpoint=%2Fa%20b&flag&x=1&x=2 HTTP/1.1\r\nHost: x\r\nContent-Length: "
      "5\r\n\r\nhello"
      "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  for (size_t piece : {size_t{1}, size_t{2}, size_t{7}, size_t{64}, wire.size()}) {
    int error = 0;
    const auto got = parse_all(wire, piece, 1 << 20, &error);
    ASSERT_EQ(got.size(), 3u) << "piece " << piece;
    EXPECT_EQ(error, 0);
    EXPECT_EQ(got[0].method, "GET");
    EXPECT_EQ(got[0].path, "/api/v1/daemon");
    EXPECT_TRUE(got[0].body.empty());
    EXPECT_EQ(got[1].method, "PUT");
    EXPECT_EQ(got[1].path, "/api/v1/mount");
    EXPECT_EQ(got[1].query,
              (std::map<std::string, std::string>{{"mountpoint", "/a b"}, {"flag", ""}, {"x", "1"}}));
    EXPECT_EQ(got[1].body, "hello");
    EXPECT_EQ(got[2].body, "abcde");
  }
}

TEST(RequestParser, LimitsEndInTheirStatus) {
  int error = 0;
  // Declared too large: refused at the header, before any body byte.
  EXPECT_TRUE(parse_all("PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", 100, 10, &error).empty());
  EXPECT_EQ(error, 413);
  // Streamed too large (chunked).
  error = 0;
  EXPECT_TRUE(
      parse_all(
          "PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n",
          5, 10, &error)
          .empty());
  EXPECT_EQ(error, 413);
  error = 0;
  parse_all("GET / HTTP/1.1\r\nX: " + std::string(RequestParser::kHeaderLimit, 'h') + "\r\n\r\n", 4096, 10,
            &error);
  EXPECT_EQ(error, 431);
  error = 0;
  parse_all("GET /" + std::string(RequestParser::kHeaderLimit, 'u') + " HTTP/1.1\r\n\r\n", 4096, 10, &error);
  EXPECT_EQ(error, 414);
  error = 0;
  parse_all("GET / HTTP/1.1\nHost: x\n\n", 100, 10, &error);
  EXPECT_EQ(error, 400);
  // A request cut short by the client's close is refused; nothing at all is no error.
  error = 0;
  parse_all("PUT / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc", 100, 10, &error);
  EXPECT_EQ(error, 400);
  error = 0;
  EXPECT_TRUE(parse_all("", 1, 10, &error).empty());
  EXPECT_EQ(error, 0);
}

TEST(RequestParser, AsksForContinueOnceWhenTheClientWaitsForIt) {
  RequestParser parser(100);
  parser.append("PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  EXPECT_EQ(parser.next(), Step::kContinue);
  EXPECT_EQ(parser.next(), Step::kNeedMore);
  parser.append("abc");
  ASSERT_EQ(parser.next(), Step::kRequest);
  EXPECT_EQ(parser.take_request().body, "abc");
  EXPECT_TRUE(parser.keep_alive());
  parser.append("GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(parser.next(), Step::kRequest);
  EXPECT_FALSE(parser.keep_alive());
}

TEST(RequestParser, PercentDecoding) {
  EXPECT_EQ(percent_decode("/a%20b+c", false), "/a b+c");
  EXPECT_EQ(percent_decode("/a%20b+c", true), "/a b c");
  EXPECT_EQ(percent_decode("%zz%4", false), "%zz%4");
  EXPECT_EQ(percent_decode("%C3%BC%2f", false), "\xc3\xbc/");
  EXPECT_EQ(percent_decode("", true), "");
}

}  // namespace
}  // namespace ferry::http
