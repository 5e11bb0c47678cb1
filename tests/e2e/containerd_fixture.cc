#include "e2e/containerd_fixture.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/proc_files.h"
#include "common/unique_fd.h"

namespace ferry::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

bool socket_accepts(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}

std::vector<std::string> split_nul(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    const size_t end = s.find('\0', start);
    out.push_back(s.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

// pid -> parent pid of every process now running.
std::map<pid_t, pid_t> parent_map() {
  std::map<pid_t, pid_t> parents;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const std::string stat = test::read_file(entry.path().string() + "/stat");
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    pid_t ppid = 0;
    char state = 0;
    if (std::sscanf(stat.c_str() + paren + 1, " %c %d", &state, &ppid) != 2) continue;
    parents[static_cast<pid_t>(std::stoi(name))] = ppid;
  }
  return parents;
}

}  // namespace

bool process_alive(pid_t pid) {
  // A killed shim is reparented to whatever reaps orphans here; until it does, it is a zombie.
  const std::string stat = test::read_file("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z' &&
         stat[paren + 2] != 'X';
}

std::string ContainerdServer::missing_prerequisite() {
  if (::geteuid() != 0) return "containerd tests need root";
  if (test::run_shell("command -v containerd >/dev/null && command -v ctr >/dev/null") != 0)
    return "containerd or ctr is not installed";
  return {};
}

ContainerdServer::ContainerdServer(ContainerdConfig config) : config_(std::move(config)) {
  socket_ = dir_ / "containerd.sock";
  ok_ = start();
  if (!ok_) ADD_FAILURE() << "containerd did not come up:\n" << log_tail();
}

ContainerdServer::~ContainerdServer() {
  stop();
}

bool ContainerdServer::start() {
  const std::string d = dir_.path();
  fs::create_directories(d + "/root");
  fs::create_directories(d + "/state");
  fs::create_directories(d + "/opt");
  std::ofstream toml(d + "/config.toml");
  toml << "version = 2\n"
       << "root = \"" << d << "/root\"\n"
       << "state = \"" << d << "/state\"\n"
       << "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
       << "[grpc]\n  address = \"" << socket_ << "\"\n"
       << "[ttrpc]\n  address = \"" << socket_ << ".ttrpc\"\n"
       << "[debug]\n  address = \"\"\n  level = \"info\"\n"
       << "[metrics]\n  address = \"\"\n"
       << "[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"" << d << "/opt\"\n"
       << config_.extra_toml << "\n";
  for (const auto& [name, address] : config_.proxy_snapshotters) {
    toml << "[proxy_plugins." << name << "]\n  type = \"snapshot\"\n  address = \"" << address << "\"\n";
  }
  toml.close();
  if (!toml) return false;
  containerd_ = test::Process::start(die_with_parent({"/usr/bin/containerd", "--config", d + "/config.toml"}),
                                   d + "/containerd.log");
  return test::wait_until([&] { return !containerd_.running() ? true : socket_accepts(socket_); },
                          config_.start_deadline) &&
         containerd_.running();
}

std::string ContainerdServer::log_tail() const {
  return file_tail(dir_ / "containerd.log");
}

RunResult ContainerdServer::ctr(const std::vector<std::string>& args, std::chrono::milliseconds deadline) {
  std::vector<std::string> argv = {"/usr/bin/ctr", "-a", socket_, "-n", config_.ns};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_with_deadline(argv, dir_.path(), deadline);
}

std::vector<pid_t> ContainerdServer::shim_processes() const {
  const auto parents = parent_map();
  std::set<pid_t> found;
  for (const auto& [pid, ppid] : parents) {
    const auto argv = split_nul(test::read_file("/proc/" + std::to_string(pid) + "/cmdline"));
    for (size_t i = 0; i + 1 < argv.size(); ++i) {
      if (argv[i] == "-address" && argv[i + 1] == socket_ && pid != containerd_.pid()) found.insert(pid);
    }
  }
  // Their descendants (the containers' processes), to a fixed point.
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& [pid, ppid] : parents) {
      if (found.count(ppid) != 0 && found.insert(pid).second) grew = true;
    }
  }
  return {found.begin(), found.end()};
}

void ContainerdServer::remove_tasks_and_containers() {
  auto tasks = ctr({"tasks", "ls", "-q"}, 20s);
  std::istringstream task_ids(tasks.out);
  for (std::string id; std::getline(task_ids, id);) {
    if (!id.empty()) ctr({"tasks", "delete", "--force", id}, 20s);
  }
  auto containers = ctr({"containers", "ls", "-q"}, 20s);
  std::istringstream container_ids(containers.out);
  for (std::string id; std::getline(container_ids, id);) {
    if (!id.empty()) ctr({"containers", "delete", id}, 20s);
  }
}

std::vector<std::string> ContainerdServer::shim_sockets() const {
  // Each task's bundle records its shim's socket (under /run/containerd/s, whatever the config).
  std::vector<std::string> sockets;
  std::error_code ec;
  for (const auto& bundle :
       fs::directory_iterator(dir_ / ("state/io.containerd.runtime.v2.task/" + config_.ns), ec)) {
    std::string address = test::read_file(bundle.path().string() + "/address");
    while (!address.empty() && (address.back() == '\n' || address.back() == ' ')) address.pop_back();
    if (address.starts_with("unix://")) sockets.push_back(address.substr(7));
  }
  return sockets;
}

void ContainerdServer::stop() {
  // The orderly way first: the shims unmount rootfs, remove cgroups and their sockets.
  if (ok_ && containerd_.running()) remove_tasks_and_containers();
  const auto sockets = shim_sockets();
  const auto shims = shim_processes();
  for (const pid_t pid : shims) ::kill(pid, SIGKILL);
  if (!test::wait_until([&] { return std::none_of(shims.begin(), shims.end(), process_alive); }, 10s))
    ADD_FAILURE() << "a shim of containerd " << containerd_.pid() << " did not exit";
  if (containerd_.pid() > 0 && containerd_.running()) {
    containerd_.signal(SIGTERM);
    if (!containerd_.wait_exit(15s)) containerd_.kill_and_reap();
  }
  const auto mounts = mounts_at_or_below(dir_.path());
  for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) test::unmount_quietly(*it);
  for (const auto& socket : sockets) ::unlink(socket.c_str());  // left by a killed shim
}

}  // namespace ferry::e2e
