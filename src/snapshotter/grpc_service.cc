#include "snapshotter/grpc_service.h"

#include <fcntl.h>
#include <github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "common/dirs.h"
#include "common/unique_fd.h"
#include "ipc/unix_socket.h"

namespace ferry::snapshotter {
namespace {

namespace api = containerd::services::snapshots::v1;
using google::protobuf::Empty;

Labels labels_of(const google::protobuf::Map<std::string, std::string>& map) {
  return Labels(map.begin(), map.end());
}

void put_mounts(const std::vector<Mount>& mounts,
                google::protobuf::RepeatedPtrField<containerd::types::Mount>* out) {
  for (const Mount& m : mounts) {
    auto* pm = out->Add();
    pm->set_type(m.type);
    pm->set_source(m.source);
    for (const auto& o : m.options) pm->add_options(o);
  }
}

void set_time(int64_t ns, google::protobuf::Timestamp* t) {
  t->set_seconds(ns / 1000000000);
  t->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

void put_info(const SnapshotRecord& r, api::Info* info) {
  info->set_name(r.key);
  info->set_parent(r.parent);
  info->set_kind(static_cast<api::Kind>(static_cast<int>(r.kind)));
  set_time(r.created_ns, info->mutable_created_at());
  set_time(r.updated_ns, info->mutable_updated_at());
  info->mutable_labels()->insert(r.labels.begin(), r.labels.end());
}

template <typename T>
grpc::Status answer(const Result<T>& r) {
  return r.ok() ? grpc::Status::OK : to_grpc(r.error());
}
grpc::Status answer(const Status& s) {
  return s.ok() ? grpc::Status::OK : to_grpc(s.error());
}

// Every RPC with containerd's semantics; the rules live in Snapshotter.
class Service final : public api::Snapshots::Service {
 public:
  explicit Service(Snapshotter& s) : s_(s) {}

  grpc::Status Prepare(grpc::ServerContext*, const api::PrepareSnapshotRequest* req,
                       api::PrepareSnapshotResponse* resp) override {
    auto mounts = s_.prepare(req->key(), req->parent(), labels_of(req->labels()));
    log_failure("prepare", req->key(), mounts);
    if (mounts.ok()) put_mounts(*mounts, resp->mutable_mounts());
    return answer(mounts);
  }
  grpc::Status View(grpc::ServerContext*, const api::ViewSnapshotRequest* req,
                    api::ViewSnapshotResponse* resp) override {
    auto mounts = s_.view(req->key(), req->parent(), labels_of(req->labels()));
    log_failure("view", req->key(), mounts);
    if (mounts.ok()) put_mounts(*mounts, resp->mutable_mounts());
    return answer(mounts);
  }
  grpc::Status Mounts(grpc::ServerContext*, const api::MountsRequest* req,
                      api::MountsResponse* resp) override {
    auto mounts = s_.mounts(req->key());
    if (mounts.ok()) put_mounts(*mounts, resp->mutable_mounts());
    return answer(mounts);
  }
  grpc::Status Commit(grpc::ServerContext*, const api::CommitSnapshotRequest* req, Empty*) override {
    Status st = s_.commit(req->name(), req->key(), labels_of(req->labels()));
    log_failure("commit", req->key(), st);
    return answer(st);
  }
  grpc::Status Remove(grpc::ServerContext*, const api::RemoveSnapshotRequest* req, Empty*) override {
    Status st = s_.remove(req->key());
    log_failure("remove", req->key(), st);
    return answer(st);
  }
  grpc::Status Stat(grpc::ServerContext*, const api::StatSnapshotRequest* req,
                    api::StatSnapshotResponse* resp) override {
    auto info = s_.stat(req->key());
    if (info.ok()) put_info(*info, resp->mutable_info());
    return answer(info);
  }
  grpc::Status Update(grpc::ServerContext*, const api::UpdateSnapshotRequest* req,
                      api::UpdateSnapshotResponse* resp) override {
    SnapshotRecord wanted;
    wanted.key = req->info().name();
    wanted.labels = labels_of(req->info().labels());
    std::vector<std::string> paths(req->update_mask().paths().begin(), req->update_mask().paths().end());
    auto info = s_.update(wanted, paths);
    if (info.ok()) put_info(*info, resp->mutable_info());
    return answer(info);
  }
  grpc::Status List(grpc::ServerContext*, const api::ListSnapshotsRequest*,
                    grpc::ServerWriter<api::ListSnapshotsResponse>* writer) override {
    // containerd applies its filters itself on what we send; batches keep each message small.
    constexpr size_t kBatch = 100;
    auto all = s_.list();
    if (!all.ok()) return to_grpc(all.error());
    api::ListSnapshotsResponse batch;
    for (const auto& r : *all) {
      put_info(r, batch.add_info());
      if (static_cast<size_t>(batch.info_size()) == kBatch) {
        if (!writer->Write(batch)) return grpc::Status::CANCELLED;
        batch.Clear();
      }
    }
    if (batch.info_size() > 0 && !writer->Write(batch)) return grpc::Status::CANCELLED;
    return grpc::Status::OK;
  }
  grpc::Status Usage(grpc::ServerContext*, const api::UsageRequest* req, api::UsageResponse* resp) override {
    auto u = s_.usage(req->key());
    if (u.ok()) {
      resp->set_size(u->size);
      resp->set_inodes(u->inodes);
    }
    return answer(u);
  }
  grpc::Status Cleanup(grpc::ServerContext*, const api::CleanupRequest*, Empty*) override {
    auto n = s_.cleanup();
    if (n.ok() && *n > 0) spdlog::info("snapshotter: cleanup removed {} orphan directories", *n);
    return answer(n);
  }

 private:
  template <typename R>
  static void log_failure(const char* what, const std::string& key, const R& r) {
    if (!r.ok()) spdlog::info("snapshotter: {} '{}': {}", what, key, r.error().message);
  }

  Snapshotter& s_;
};

}  // namespace

grpc::Status to_grpc(const Error& error) {
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (error.code) {
    case ENOENT:
      code = grpc::StatusCode::NOT_FOUND;
      break;
    case EEXIST:
      code = grpc::StatusCode::ALREADY_EXISTS;
      break;
    case EINVAL:
      code = grpc::StatusCode::INVALID_ARGUMENT;
      break;
    case EPERM:
    case ENOTEMPTY:
      code = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    case EBUSY:
    case EAGAIN:
      code = grpc::StatusCode::UNAVAILABLE;
      break;
    default:
      break;
  }
  return {code, error.message};
}

struct GrpcServer::Impl {
  ipc::UnixListener listener;
  std::unique_ptr<Service> service;
  std::unique_ptr<grpc::Server> server;
  UniqueFd stop_fd;
  std::thread acceptor;

  explicit Impl(ipc::UnixListener l) : listener(std::move(l)) {}

  void accept_loop() {
    for (;;) {
      pollfd fds[2] = {{listener.fd(), POLLIN, 0}, {stop_fd.get(), POLLIN, 0}};
      int n = ::poll(fds, 2, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        spdlog::error("snapshotter: poll on '{}' failed: {}", listener.path(), std::strerror(errno));
        return;
      }
      if (fds[1].revents != 0) return;
      auto conn = listener.try_accept();
      if (!conn.ok()) {
        spdlog::warn("snapshotter: accepting on '{}': {}", listener.path(), conn.error().message);
        continue;
      }
      if (!*conn) continue;
      grpc::AddInsecureChannelFromFd(server.get(), conn->release());  // gRPC owns it from here
    }
  }
};

GrpcServer::GrpcServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GrpcServer::~GrpcServer() {
  uint64_t one = 1;
  if (::write(impl_->stop_fd.get(), &one, sizeof one) < 0) {
    spdlog::warn("snapshotter: cannot wake the acceptor: {}", std::strerror(errno));
  }
  if (impl_->acceptor.joinable()) impl_->acceptor.join();
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  impl_->server->Wait();
}

const std::string& GrpcServer::path() const {
  return impl_->listener.path();
}

Result<std::unique_ptr<GrpcServer>> GrpcServer::start(const std::string& socket_path,
                                                      Snapshotter& snapshotter) {
  auto slash = socket_path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    if (auto made = make_dirs(socket_path.substr(0, slash), 0700); !made.ok()) {
      return std::move(made).error().context("creating the directory of '" + socket_path + "'");
    }
  }
  FERRY_ASSIGN(ipc::UnixListener listener, ipc::UnixListener::listen(socket_path, SOMAXCONN, 0600));
  auto impl = std::make_unique<Impl>(std::move(listener));
  impl->stop_fd = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!impl->stop_fd) return errno_error("cannot create an eventfd for the gRPC acceptor");
  impl->service = std::make_unique<Service>(snapshotter);
  grpc::ServerBuilder builder;
  builder.RegisterService(impl->service.get());
  impl->server = builder.BuildAndStart();
  if (!impl->server) return Error{EIO, "cannot start the gRPC server for '" + socket_path + "'"};
  impl->acceptor = std::thread([p = impl.get()] { p->accept_loop(); });
  spdlog::info("snapshotter: containerd snapshots API on unix socket '{}'", socket_path);
  return std::make_unique<GrpcServer>(std::move(impl));
}

}  // namespace ferry::snapshotter
