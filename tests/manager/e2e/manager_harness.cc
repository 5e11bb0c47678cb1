#include "manager/e2e/manager_harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include "common/proc_files.h"
#include "common/unique_fd.h"

namespace ferry::test {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kMarker = "FERRY_E2E_ROOT";

std::string tail(const std::string& text, size_t n) {
  return text.size() <= n ? text : "...\n" + text.substr(text.size() - n);
}

// TOML basic string: the paths we write have no quotes or backslashes, but be exact anyway.
std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::optional<std::string> run_with_deadline(std::function<std::string()> action,
                                             std::chrono::milliseconds timeout) {
  auto result = std::make_shared<std::promise<std::string>>();
  auto future = result->get_future();
  // Detached on purpose: a read that hangs on a FUSE mount cannot be interrupted; the thread
  // returns once the mount is torn down (cleanup kills whatever holds /dev/fuse).
  std::thread([action = std::move(action), result] { result->set_value(action()); }).detach();
  if (future.wait_for(timeout) != std::future_status::ready) return std::nullopt;
  return future.get();
}

int open_file(const std::string& path) {
  return ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
}

std::string pread_all(int fd, size_t size) {
  std::string out(size, '\0');
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, out.data() + done, size - done, static_cast<off_t>(done));
    if (n < 0) return std::string("error: read: ") + std::strerror(errno);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

std::optional<std::string> read_with_deadline(const std::string& path, std::chrono::milliseconds timeout) {
  return run_with_deadline(
      [path] {
        UniqueFd fd(open_file(path));
        if (!fd) return std::string("error: open: ") + std::strerror(errno);
        std::string out;
        char buf[65536];
        while (true) {
          ssize_t n = ::read(fd.get(), buf, sizeof buf);
          if (n < 0) return std::string("error: read: ") + std::strerror(errno);
          if (n == 0) break;
          out.append(buf, static_cast<size_t>(n));
        }
        return out;
      },
      timeout);
}

// ---- ManagerHarness ------------------------------------------------------------------------

ManagerHarness::ManagerHarness(ManagerOptions options) : options_(std::move(options)) {
  if (options_.nydusd_path.empty()) options_.nydusd_path = binary_path("ferryd");
  fs::create_directories(log_dir());
  write_config();
}

ManagerHarness::~ManagerHarness() {
  if (::testing::Test::HasFailure()) dump_logs();
  cleanup();
}

void ManagerHarness::write_config() const {
  std::ofstream out(config_path());
  out << "version = 1\n"
      << "root = " << toml_string(root()) << "\n"
      << "address = " << toml_string(root() + "/grpc.sock") << "\n"
      << "daemon_mode = " << toml_string(options_.daemon_mode) << "\n"
      << "[daemon]\n"
      << "nydusd_path = " << toml_string(options_.nydusd_path) << "\n"
      << "recover_policy = " << toml_string(options_.recover_policy) << "\n"
      << "failover_policy = " << toml_string(options_.failover_policy) << "\n"
      << "threads_number = " << options_.threads << "\n"
      << "recover_attempts = " << options_.recover_attempts << "\n"
      << "hot_standby = " << (options_.hot_standby ? "true" : "false") << "\n"
      << "[system]\n"
      << "enable = true\n"
      << "address = " << toml_string(system_socket()) << "\n"
      << "[log]\n"
      << "level = " << toml_string(options_.log_level) << "\n"
      << "dir = " << toml_string(log_dir()) << "\n";
}

::testing::AssertionResult ManagerHarness::start(std::chrono::milliseconds timeout) {
  if (manager_.running()) return ::testing::AssertionFailure() << "manager already running";
  auto env = options_.env;
  env[kMarker] = dir();
  manager_ =
      Process::start({binary_path("ferry-snapshotter"), "--config", config_path()}, manager_log(), env);
  bool up = wait_until(
      [&] {
        if (!manager_.running()) return true;  // stop polling; reported below
        auto r = http::http_request(system_socket(), "GET", "/api/v1/daemons", {}, 2s);
        return r.ok() && r->status == 200;
      },
      timeout);
  if (!manager_.running()) {
    return ::testing::AssertionFailure() << "ferry-snapshotter exited at start-up; log:\n"
                                         << tail(read_file(manager_log()), 4000);
  }
  if (!up) {
    return ::testing::AssertionFailure() << "ferry-snapshotter's system socket " << system_socket()
                                         << " did not answer within " << timeout.count() << " ms; log:\n"
                                         << tail(read_file(manager_log()), 4000);
  }
  return ::testing::AssertionSuccess();
}

int ManagerHarness::stop(std::chrono::milliseconds timeout) {
  if (!manager_.running()) return manager_.wait_exit(0ms).value_or(-1);
  manager_.signal(SIGTERM);
  int st = manager_.wait_exit(timeout).value_or(-1);
  if (st == -1) {
    ADD_FAILURE() << "ferry-snapshotter did not exit within " << timeout.count() << " ms of SIGTERM";
    manager_.kill_and_reap();
  }
  return st;
}

void ManagerHarness::kill_manager() {
  manager_.kill_and_reap();
}

SampleImage ManagerHarness::make_image(const std::string& name, int files, uint64_t seed) {
  fs::create_directories(dir_ / "images");
  return make_sample_image(dir_ / "images", name, files, seed);
}

std::string ManagerHarness::make_mountpoint(const std::string& name) {
  std::string path = dir_ / ("mnt-" + name);
  fs::create_directories(path);
  return path;
}

ApiAnswer ManagerHarness::request(const std::string& method, const std::string& path, const std::string& body,
                                  std::chrono::milliseconds timeout) const {
  ApiAnswer a;
  auto r = http::http_request(system_socket(), method, path, body, timeout);
  if (!r.ok()) {
    a.body = r.error().message;
    return a;
  }
  a.status = r->status;
  a.body = r->body;
  a.json = json::parse(a.body, nullptr, false);
  if (a.json.is_discarded()) a.json = nullptr;
  return a;
}

ApiAnswer ManagerHarness::mount_raw(const std::string& body) const {
  return request("POST", "/api/v1/mounts", body);
}

std::string ManagerHarness::mount(const std::string& mountpoint, const SampleImage& image) {
  json body = {{"mountpoint", mountpoint}, {"bootstrap", image.meta}, {"config", json::parse(image.config)}};
  auto a = mount_raw(body.dump());
  if (a.status != 201 || !a.json.is_object() || !a.json.contains("daemon_id")) {
    ADD_FAILURE() << "POST /api/v1/mounts " << mountpoint << " -> " << a.status << " " << a.body;
    return "";
  }
  return a.json["daemon_id"].get<std::string>();
}

ManagerHarness::OneMount ManagerHarness::start_with_one_mount(const std::string& name, int files,
                                                              uint64_t seed) {
  OneMount m{make_image(name, files, seed), make_mountpoint(name), {}};
  if (!start()) {
    ADD_FAILURE() << "the manager did not start";
    return m;
  }
  m.id = mount_running(m.mountpoint, m.image);
  return m;
}

std::string ManagerHarness::mount_running(const std::string& mountpoint, const SampleImage& image) {
  std::string id = mount(mountpoint, image);
  if (id.empty()) return id;
  if (!wait_daemon_state(id, "RUNNING")) {
    ADD_FAILURE() << "daemon " << id << " of " << mountpoint << " never RUNNING: " << daemon(id).dump();
    return "";
  }
  return id;
}

int ManagerHarness::umount(const std::string& mountpoint) const {
  return request("DELETE", "/api/v1/mounts?mountpoint=" + http::url_encode(mountpoint)).status;
}

ApiAnswer ManagerHarness::upgrade(const std::string& nydusd_path, const std::string& version,
                                  std::chrono::milliseconds timeout) const {
  json body = {{"nydusd_path", nydusd_path}};
  if (!version.empty()) body["version"] = version;
  return request("PUT", "/api/v1/nydusd/upgrade", body.dump(), timeout);
}

json ManagerHarness::daemons() const {
  auto a = request("GET", "/api/v1/daemons", {}, 5s);
  if (a.status != 200 || !a.json.is_array()) return json::array();
  return a.json;
}

json ManagerHarness::daemon(const std::string& id) const {
  for (const auto& d : daemons()) {
    if (d.is_object() && d.value("id", "") == id) return d;
  }
  return json::object();
}

pid_t ManagerHarness::daemon_pid(const std::string& id) const {
  auto d = daemon(id);
  if (!d.contains("pid") || !d["pid"].is_number()) return 0;
  return d["pid"].get<pid_t>();
}

std::string ManagerHarness::daemon_state(const std::string& id) const {
  auto d = daemon(id);
  if (!d.is_object()) return "";
  return d.value("state", "");
}

json ManagerHarness::records(const std::string& daemon_id) const {
  std::string path = "/api/v1/daemons/records?limit=100000";
  if (!daemon_id.empty()) path += "&daemon=" + http::url_encode(daemon_id);
  auto a = request("GET", path, {}, 10s);
  if (a.status != 200 || !a.json.is_array()) return json::array();
  return a.json;
}

std::vector<json> ManagerHarness::records_of(const std::string& event, const std::string& daemon_id) const {
  std::vector<json> out;
  for (const auto& r : records(daemon_id)) {
    if (r.is_object() && r.value("event", "") == event) out.push_back(r);
  }
  return out;
}

std::string ManagerHarness::metrics() const {
  auto a = request("GET", "/metrics", {}, 5s);
  return a.status == 200 ? a.body : "";
}

double ManagerHarness::metric(const std::string& series) const {
  std::istringstream in(metrics());
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.rfind(series, 0) == 0 && line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

double ManagerHarness::event_counter(const std::string& event) const {
  return metric("ferry_events_total{event=\"" + event + "\"}");
}

pid_t ManagerHarness::wait_for_pid_change(const std::string& id, pid_t old_pid,
                                          std::chrono::milliseconds timeout) const {
  pid_t now = 0;
  wait_until(
      [&] {
        auto d = daemon(id);
        if (d.value("state", "") != "RUNNING" || !d.contains("pid") || !d["pid"].is_number()) return false;
        now = d["pid"].get<pid_t>();
        return now != old_pid && now > 0;
      },
      timeout);
  return now != old_pid ? now : 0;
}

pid_t ManagerHarness::crash_and_wait_successor(const std::string& id, pid_t pid,
                                               std::chrono::milliseconds timeout) const {
  if (!kill_and_wait_gone(pid)) {
    ADD_FAILURE() << "daemon " << id << ": pid " << pid << " did not die on SIGKILL";
    return 0;
  }
  pid_t next = wait_for_pid_change(id, pid, timeout);
  if (next == 0) {
    ADD_FAILURE() << "daemon " << id << ": no successor RUNNING after pid " << pid << " died\n"
                  << daemon(id).dump() << "\n"
                  << records(id).dump(1);
  }
  return next;
}

bool ManagerHarness::wait_daemon_state(const std::string& id, const std::string& state,
                                       std::chrono::milliseconds timeout) const {
  return wait_until([&] { return daemon_state(id) == state; }, timeout);
}

std::set<pid_t> ManagerHarness::our_processes() const {
  auto pids = processes_naming(dir(), std::string(kMarker) + "=" + dir());
  return {pids.begin(), pids.end()};
}

void ManagerHarness::cleanup() {
  manager_.kill_and_reap();
  // Daemons may start successors while we kill (a manager we just killed cannot, but a stray
  // failover thread could have forked an instant before): repeat until nothing is left.
  for (int round = 0; round < 10; ++round) {
    auto pids = our_processes();
    if (pids.empty()) break;
    for (pid_t pid : pids) ::kill(pid, SIGKILL);
    for (pid_t pid : pids) {
      if (!wait_gone(pid, 10s)) {
        std::cerr << "cleanup: process " << pid << " survived SIGKILL for 10 s\n";
      }
    }
  }
  auto mounts = mounts_at_or_below(dir());
  for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) unmount_quietly(*it);
}

void ManagerHarness::dump_logs() const {
  std::cerr << "--- ferry-snapshotter log (" << manager_log() << ") ---\n"
            << tail(read_file(manager_log()), 12000) << "\n";
  std::error_code ec;
  std::vector<fs::path> logs;
  for (const auto& e : fs::directory_iterator(log_dir(), ec)) logs.push_back(e.path());
  std::sort(logs.begin(), logs.end());
  for (const auto& p : logs) {
    std::cerr << "--- " << p.string() << " ---\n" << tail(read_file(p.string()), 3000) << "\n";
  }
}

}  // namespace ferry::test
