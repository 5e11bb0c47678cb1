#include "fuse/server/filesystem.h"

namespace ferry::fuse {
namespace {
Error enosys() {
  return Error{ENOSYS, "not implemented"};
}
}  // namespace

Result<Entry> Filesystem::lookup(const RequestContext&, uint64_t, std::string_view) {
  return enosys();
}
Result<AttrReply> Filesystem::getattr(const RequestContext&, uint64_t) {
  return enosys();
}
Result<std::string> Filesystem::readlink(const RequestContext&, uint64_t) {
  return enosys();
}
Result<OpenReply> Filesystem::open(const RequestContext&, uint64_t, uint32_t) {
  return enosys();
}
Result<size_t> Filesystem::read(const RequestContext&, uint64_t, uint64_t, uint64_t, std::span<std::byte>) {
  return enosys();
}
Result<OpenReply> Filesystem::opendir(const RequestContext&, uint64_t, uint32_t) {
  return enosys();
}
Status Filesystem::readdir(const RequestContext&, uint64_t, uint64_t, uint64_t, DirSink&) {
  return enosys();
}
Result<struct statvfs> Filesystem::statfs(const RequestContext&, uint64_t) {
  return enosys();
}
Result<std::string> Filesystem::getxattr(const RequestContext&, uint64_t, std::string_view) {
  return enosys();
}
Result<std::string> Filesystem::listxattr(const RequestContext&, uint64_t) {
  return enosys();
}
Status Filesystem::access(const RequestContext&, uint64_t, uint32_t) {
  return enosys();
}
Result<uint64_t> Filesystem::lseek(const RequestContext&, uint64_t, uint64_t, uint64_t, uint32_t) {
  return enosys();
}

}  // namespace ferry::fuse
