// CapturingWriter: a fuse::ReplyWriter that keeps every reply and notification written to it,
// decoded into header and payload, so a test can drive FuseServer::handle() and look at what
// the kernel would have received. write() can be made to fail (e.g. -ENOENT, -ENODEV).
//
// Thread-safety: write() from many threads (a mutex); reading `replies` only once writers stop.
#pragma once

#include <linux/fuse.h>
#include <sys/uio.h>

#include <cstring>
#include <mutex>
#include <span>
#include <vector>

#include "fuse/server/fuse_server.h"

namespace ferry::testkit {

struct CapturedReply {
  fuse_out_header header{};
  std::vector<std::byte> payload;
  bool framed = true;  // header.len matched the bytes written

  // The payload as T (zero-filled if shorter).
  template <typename T>
  [[nodiscard]] T as() const {
    T v{};
    if (!payload.empty()) std::memcpy(&v, payload.data(), std::min(sizeof v, payload.size()));
    return v;
  }
};

class CapturingWriter final : public fuse::ReplyWriter {
 public:
  int write(std::span<const iovec> iov) override {
    std::vector<std::byte> all;
    for (const auto& v : iov) {
      const auto* p = static_cast<const std::byte*>(v.iov_base);
      all.insert(all.end(), p, p + v.iov_len);
    }
    CapturedReply r;
    if (!all.empty()) std::memcpy(&r.header, all.data(), std::min(sizeof r.header, all.size()));
    r.framed = all.size() >= sizeof r.header && r.header.len == all.size();
    if (all.size() > sizeof r.header) r.payload.assign(all.begin() + sizeof r.header, all.end());
    std::lock_guard lock(mu_);
    replies.push_back(std::move(r));
    return result;
  }

  std::vector<CapturedReply> replies;
  int result = 0;  // what write() returns

 private:
  std::mutex mu_;
};

}  // namespace ferry::testkit
