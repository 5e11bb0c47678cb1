// ForwardingFilesystem: a fuse::Filesystem that passes every call to another one. Test
// decorators derive from it and override only the calls they change (a stall, an error).
//
// Thread-safety and errors: exactly the inner filesystem's. Holds a reference: the inner
// filesystem must outlive the decorator.
#pragma once

#include "fuse/server/filesystem.h"

namespace ferry::testkit {

class ForwardingFilesystem : public fuse::Filesystem {
 public:
  explicit ForwardingFilesystem(fuse::Filesystem& inner) : inner_(inner) {}

  void init(const fuse::FuseInitParams& params) override { inner_.init(params); }
  void destroy() override { inner_.destroy(); }
  Result<fuse::Entry> lookup(const fuse::RequestContext& ctx, uint64_t parent, std::string_view name) override {
    return inner_.lookup(ctx, parent, name);
  }
  void forget(const fuse::RequestContext& ctx, uint64_t nodeid, uint64_t nlookup) override {
    inner_.forget(ctx, nodeid, nlookup);
  }
  Result<fuse::AttrReply> getattr(const fuse::RequestContext& ctx, uint64_t nodeid) override {
    return inner_.getattr(ctx, nodeid);
  }
  Result<std::string> readlink(const fuse::RequestContext& ctx, uint64_t nodeid) override {
    return inner_.readlink(ctx, nodeid);
  }
  Result<fuse::OpenReply> open(const fuse::RequestContext& ctx, uint64_t nodeid, uint32_t flags) override {
    return inner_.open(ctx, nodeid, flags);
  }
  Result<size_t> read(const fuse::RequestContext& ctx, uint64_t nodeid, uint64_t fh, uint64_t offset,
                      std::span<std::byte> out) override {
    return inner_.read(ctx, nodeid, fh, offset, out);
  }
  void release(uint64_t nodeid, uint64_t fh) override { inner_.release(nodeid, fh); }
  Result<fuse::OpenReply> opendir(const fuse::RequestContext& ctx, uint64_t nodeid, uint32_t flags) override {
    return inner_.opendir(ctx, nodeid, flags);
  }
  Status readdir(const fuse::RequestContext& ctx, uint64_t nodeid, uint64_t fh, uint64_t offset,
                 fuse::DirSink& sink) override {
    return inner_.readdir(ctx, nodeid, fh, offset, sink);
  }
  void releasedir(uint64_t nodeid, uint64_t fh) override { inner_.releasedir(nodeid, fh); }
  Result<struct statvfs> statfs(const fuse::RequestContext& ctx, uint64_t nodeid) override {
    return inner_.statfs(ctx, nodeid);
  }
  Result<std::string> getxattr(const fuse::RequestContext& ctx, uint64_t nodeid, std::string_view name) override {
    return inner_.getxattr(ctx, nodeid, name);
  }
  Result<std::string> listxattr(const fuse::RequestContext& ctx, uint64_t nodeid) override {
    return inner_.listxattr(ctx, nodeid);
  }
  Status access(const fuse::RequestContext& ctx, uint64_t nodeid, uint32_t mask) override {
    return inner_.access(ctx, nodeid, mask);
  }
  Result<uint64_t> lseek(const fuse::RequestContext& ctx, uint64_t nodeid, uint64_t fh, uint64_t offset,
                         uint32_t whence) override {
    return inner_.lseek(ctx, nodeid, fh, offset, whence);
  }

 protected:
  [[nodiscard]] fuse::Filesystem& inner() const { return inner_; }

 private:
  fuse::Filesystem& inner_;
};

}  // namespace ferry::testkit
