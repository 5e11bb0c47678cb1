// GrpcServer: containerd's snapshots API (containerd.services.snapshots.v1.Snapshots) served
// from a Snapshotter on a unix socket, for containerd's [proxy_plugins] (type "snapshot").
//
// The socket is ipc::UnixListener's (mode 0600, parent directory made 0700, a stale socket
// replaced, a live one or a non-socket refused): one thread accepts and hands each connection to
// gRPC, so gRPC never binds a path itself. Errors reach containerd as the gRPC codes its
// errdefs map back: NotFound, AlreadyExists, InvalidArgument, FailedPrecondition (EPERM,
// ENOTEMPTY), Unavailable (EBUSY, EAGAIN), Internal otherwise, each with our message.
//
// Thread-safety: start/stop from one thread; RPCs run on gRPC's threads. Destruction stops
// accepting, then waits for the RPCs in progress.
#pragma once

#include <grpcpp/support/status.h>

#include <memory>
#include <string>

#include "common/result.h"
#include "snapshotter/snapshotter.h"

namespace ferry::snapshotter {

// The gRPC status for one of our errors (the mapping above).
grpc::Status to_grpc(const Error& error);

class GrpcServer {
 public:
  static Result<std::unique_ptr<GrpcServer>> start(const std::string& socket_path, Snapshotter& snapshotter);
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  [[nodiscard]] const std::string& path() const;

  struct Impl;
  explicit GrpcServer(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::snapshotter
