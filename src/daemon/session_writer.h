// SessionWriter: the FUSE server's ReplyWriter over a FuseSession (replies and notifications
// go to /dev/fuse). The daemon is where transport and protocol meet; neither knows the other.
//
// Thread-safety: as FuseSession::write, any thread. Holds a reference: the session must
// outlive the writer.
#pragma once

#include <spdlog/spdlog.h>

#include <cstring>

#include "fuse/server/fuse_server.h"
#include "fuse/transport/fuse_session.h"

namespace ferry::daemon {

class SessionWriter final : public fuse::ReplyWriter {
 public:
  explicit SessionWriter(const fuse::FuseSession& session) : session_(session) {}
  int write(std::span<const iovec> iov) override {
    int rc = session_.write(iov);
    // ENOENT: the kernel stopped waiting (interrupted, or resent elsewhere). Not an error.
    if (rc != 0 && rc != -ENOENT) spdlog::debug("write to /dev/fuse failed: {}", std::strerror(-rc));
    return rc;
  }

 private:
  const fuse::FuseSession& session_;
};

}  // namespace ferry::daemon
