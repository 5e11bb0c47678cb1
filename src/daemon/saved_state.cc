#include "daemon/saved_state.h"

#include "ipc/state_envelope.h"
#include "saved_state.pb.h"

namespace ferry::daemon {

std::vector<std::byte> encode_state(const SavedState& s) {
  proto::SavedState p;
  p.set_daemon_id(s.daemon_id);
  p.set_mountpoint(s.mountpoint);
  auto* f = p.mutable_fuse();
  f->set_major(s.fuse.major);
  f->set_minor(s.fuse.minor);
  f->set_kernel_minor(s.fuse.kernel_minor);
  f->set_kernel_flags(s.fuse.kernel_flags);
  f->set_flags(s.fuse.flags);
  f->set_max_readahead(s.fuse.max_readahead);
  f->set_max_write(s.fuse.max_write);
  f->set_max_pages(s.fuse.max_pages);
  f->set_max_background(s.fuse.max_background);
  f->set_congestion_threshold(s.fuse.congestion_threshold);
  f->set_time_gran(s.fuse.time_gran);
  for (const auto& img : s.images) {
    auto* i = p.add_images();
    i->set_slot(img.slot);
    i->set_name(img.name);
    i->set_source(img.source);
    i->set_config(img.config);
    i->set_mounted_time(img.mounted_time);
    i->set_detached(img.detached);
  }
  p.set_next_slot(s.next_slot);
  p.set_failover_policy(s.failover_policy);
  p.set_pid(s.pid);
  p.set_pid_start_time(s.pid_start_time);
  p.set_version(s.version);
  p.set_saved_at_unix_ms(s.saved_at_unix_ms);
  std::string payload = p.SerializeAsString();
  return ipc::seal(std::as_bytes(std::span(payload.data(), payload.size())), kStateFormatVersion);
}

Result<SavedState> decode_state(std::span<const std::byte> bytes) {
  auto opened = ipc::open_envelope(bytes, kStateFormatVersion);
  if (!opened.ok()) return std::move(opened).error();
  proto::SavedState p;
  const auto& payload = opened->payload;
  if (!p.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return Error{EINVAL, "state payload is not a valid ferryd state"};
  }
  SavedState s;
  s.daemon_id = p.daemon_id();
  s.mountpoint = p.mountpoint();
  const auto& f = p.fuse();
  s.fuse.major = f.major();
  s.fuse.minor = f.minor();
  s.fuse.kernel_minor = f.kernel_minor();
  s.fuse.kernel_flags = f.kernel_flags();
  s.fuse.flags = f.flags();
  s.fuse.max_readahead = f.max_readahead();
  s.fuse.max_write = f.max_write();
  s.fuse.max_pages = static_cast<uint16_t>(f.max_pages());
  s.fuse.max_background = static_cast<uint16_t>(f.max_background());
  s.fuse.congestion_threshold = static_cast<uint16_t>(f.congestion_threshold());
  s.fuse.time_gran = f.time_gran();
  if (s.fuse.major != 7 || s.fuse.max_pages == 0 || s.fuse.max_write == 0) {
    return Error{EINVAL, "state carries no negotiated FUSE parameters"};
  }
  for (const auto& i : p.images()) {
    s.images.push_back({i.slot(), i.name(), i.source(), i.config(), i.mounted_time(), i.detached()});
  }
  s.next_slot = p.next_slot();
  s.failover_policy = p.failover_policy();
  s.pid = p.pid();
  s.pid_start_time = p.pid_start_time();
  s.version = p.version();
  s.saved_at_unix_ms = p.saved_at_unix_ms();
  return s;
}

}  // namespace ferry::daemon
