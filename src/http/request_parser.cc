#include "http/request_parser.h"

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <optional>
#include <utility>

namespace ferry::http {

namespace bhttp = boost::beast::http;

struct RequestParser::Beast {
  std::optional<bhttp::request_parser<bhttp::string_body>> parser;
};

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string to_string(boost::beast::string_view s) {
  return {s.data(), s.size()};
}

bool iequals(boost::beast::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// "a=1&b&c=%2F" -> {a: "1", b: "", c: "/"}; the first of a repeated key wins.
void decode_query(std::string_view query, std::map<std::string, std::string>& out) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    std::string key = percent_decode(pair.substr(0, eq), true);
    std::string value =
        eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1), true);
    out.emplace(std::move(key), std::move(value));
  }
}

}  // namespace

std::string percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      const int hi = hex_value(s[i + 1]);
      const int lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

// Declared in http_server.h (ferryctl uses it too); defined here, where Beast is included.
std::string_view reason_phrase(int status) {
  if (status < 100 || status > 999) return {};
  const auto text = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  if (text == "<unknown-status>") return {};
  return {text.data(), text.size()};
}

RequestParser::RequestParser(size_t max_body) : max_body_(max_body), beast_(std::make_unique<Beast>()) {
  start_request();
}

RequestParser::~RequestParser() = default;

void RequestParser::start_request() {
  auto& p = beast_->parser.emplace();
  p.header_limit(static_cast<std::uint32_t>(kHeaderLimit));
  p.body_limit(static_cast<std::uint64_t>(max_body_));
  p.eager(true);
  continue_sent_ = false;
  request_consumed_ = 0;
}

void RequestParser::append(std::string_view bytes) {
  if (consumed_ > 0 && consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  }
  buffer_.append(bytes);
}

void RequestParser::end_of_input() {
  eof_ = true;
}

RequestParser::Step RequestParser::fail(int status, std::string message) {
  error_status_ = status;
  error_message_ = std::move(message);
  buffer_.clear();
  consumed_ = 0;
  return Step::kError;
}

RequestParser::Step RequestParser::next() {
  if (error_status_ != 0) return Step::kError;
  auto& p = *beast_->parser;
  while (!p.is_done()) {
    const std::string_view pending(buffer_.data() + consumed_, buffer_.size() - consumed_);
    boost::beast::error_code ec;
    size_t used = 0;
    if (!pending.empty()) used = p.put(boost::asio::const_buffer(pending.data(), pending.size()), ec);
    consumed_ += used;
    request_consumed_ += used;
    if (ec == bhttp::error::need_more || (!ec && pending.empty())) {
      if (ec == bhttp::error::need_more && used == 0 && !p.is_header_done() &&
          pending.size() > kHeaderLimit) {
        ec = bhttp::error::header_limit;  // Beast reports it itself; this only guards the buffer
      } else {
        if (eof_) {
          // The peer is gone: a request it left half-sent is dropped without an answer when
          // nothing of it arrived, refused otherwise.
          if (pending.empty() && !p.got_some()) return Step::kNeedMore;
          return fail(400, "the request was cut short: the client closed the connection");
        }
        if (p.is_header_done() && !continue_sent_) {
          continue_sent_ = true;
          const auto expect = p.get()[bhttp::field::expect];
          if (iequals(expect, "100-continue")) return Step::kContinue;
        }
        return Step::kNeedMore;
      }
    }
    if (ec == bhttp::error::body_limit) {
      return fail(413, "request body exceeds the limit of " + std::to_string(max_body_) + " bytes");
    }
    if (ec == bhttp::error::header_limit) {
      // Beast takes the request line as soon as it is complete, the headers after it.
      const bool line_done = request_consumed_ > 0 || pending.find("\r\n") != std::string_view::npos;
      if (!line_done) return fail(414, "request line exceeds " + std::to_string(kHeaderLimit) + " bytes");
      return fail(431, "request headers exceed " + std::to_string(kHeaderLimit) + " bytes");
    }
    if (ec) return fail(400, "malformed HTTP request: " + ec.message());
  }

  auto message = p.release();
  request_ = HttpRequest{};
  request_.method = to_string(message.method_string());
  const std::string_view target(message.target().data(), message.target().size());
  const size_t question = target.find('?');
  request_.path = percent_decode(target.substr(0, question), false);
  if (question != std::string_view::npos) decode_query(target.substr(question + 1), request_.query);
  request_.body = std::move(message.body());
  keep_alive_ = message.keep_alive();
  head_ = message.method() == bhttp::verb::head;
  start_request();
  return Step::kRequest;
}

HttpRequest RequestParser::take_request() {
  return std::move(request_);
}

}  // namespace ferry::http
