// Failover and hot upgrade inside ferryd, end to end: a supervisor (the ipc library, in this
// process) holds the state and the /dev/fuse fd; daemons crash (kill -9) or hand over while
// reader threads verify every byte they read; bad states are refused without harm.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/fuse.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "daemon/daemon_harness.h"
#include "ipc/state_envelope.h"
#include "ipc/supervisor.h"
#include "kit/fault_proxy.h"
#include "oci/registry_client.h"
#include "oci/registry_fixture.h"

namespace ferry::test {
namespace {

using nlohmann::json;

class TakeoverTest : public ::testing::Test {
 protected:
  // The image every daemon serves; a fixture may serve another kind.
  virtual SampleImage make_image() { return make_sample_image(dir_.path(), "img", 40, 21); }
  void SetUp() override {
    image_ = make_image();
    mnt_ = dir_ / "mnt";
    std::filesystem::create_directories(mnt_);
    auto sup = ipc::Supervisor::listen(dir_ / "sup.sock");
    ASSERT_TRUE(sup.ok()) << sup.error().message;
    supervisor_ = std::move(*sup);
  }
  void TearDown() override {
    if (HasFailure()) {
      for (int i = 0; i <= generation_; ++i) {
        std::cerr << "--- ferryd log " << i << " ---\n" << read_file(log(i)) << "\n";
      }
    }
  }
  std::string log(int i) const { return dir_ / ("ferryd-" + std::to_string(i) + ".log"); }
  std::string sock(int i) const { return dir_ / ("api-" + std::to_string(i) + ".sock"); }

  // Starts a daemon of generation `gen`; `upgrade` waits for a takeover.
  Ferryd start(int gen, bool upgrade, const std::string& policy = "resend",
               const std::map<std::string, std::string>& env = {},
               const std::vector<std::string>& binary = {"ferryd"}) {
    generation_ = std::max(generation_, gen);
    std::vector<std::string> args = {
        "--mountpoint",      mnt_,      "--bootstrap", image_.meta, "--config",     image_.config_path,
        "--apisock",         sock(gen), "--id",        "daemon-1",  "--supervisor", dir_ / "sup.sock",
        "--failover-policy", policy};
    if (upgrade) args.emplace_back("--upgrade");
    return Ferryd::start(args, log(gen), env, binary);
  }
  void save(int gen) {
    auto r =
        supervisor_->receive([&] { return api_ok(sock(gen), "PUT", "/api/v1/daemon/fuse/sendfd"); }, 10s);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
  void take_over_and_start(int gen) {
    ASSERT_TRUE(wait_state(sock(gen), "INIT"));
    auto r = supervisor_->send([&] { return api_ok(sock(gen), "PUT", "/api/v1/daemon/fuse/takeover"); }, 10s);
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(daemon_state(sock(gen)), "READY");
    ASSERT_TRUE(api_ok(sock(gen), "PUT", "/api/v1/daemon/start").ok());
    ASSERT_EQ(daemon_state(sock(gen)), "RUNNING");
  }

  TempDir dir_;
  MountGuard guard_{dir_ / "mnt"};
  SampleImage image_;
  std::string mnt_;
  std::unique_ptr<ipc::Supervisor> supervisor_;
  int generation_ = 0;
};

// Field `n` (proc(5) stat) of every thread of `pid`.
std::set<int> thread_field(pid_t pid, int n) {
  std::set<int> values;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::string stat = read_file(task.path().string() + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    for (int i = 3; i <= n && rest >> field; ++i) {
      if (i == n) values.insert(std::stoi(field));
    }
  }
  return values;
}
std::set<int> thread_nices(pid_t pid) {
  return thread_field(pid, 19);
}

// Runs `fn` with the calling thread at nice `nice` (a process it forks starts so), then back.
template <typename Fn>
auto while_nice(int nice, Fn fn) {
  const auto tid = static_cast<id_t>(::gettid());
  errno = 0;
  const int before = ::getpriority(PRIO_PROCESS, tid);
  EXPECT_EQ(::setpriority(PRIO_PROCESS, tid, nice), 0);
  auto result = fn();
  EXPECT_EQ(::setpriority(PRIO_PROCESS, tid, before), 0) << "restoring the test thread's priority needs root";
  return result;
}

std::set<std::string> list_rest(DIR* d) {
  std::set<std::string> names;
  while (dirent* e = ::readdir(d)) names.insert(e->d_name);
  return names;
}

TEST_F(TakeoverTest, TwentyCrashesInARowLoseNothing) {
  Ferryd d = start(0, false);
  ASSERT_TRUE(wait_state(sock(0), "RUNNING"));
  // Opened before the first crash, used after the last.
  std::string kept_file = image_.files[7];
  int kept_fd = ::open((mnt_ + "/" + kept_file).c_str(), O_RDONLY);
  ASSERT_GE(kept_fd, 0);
  DIR* dir = ::opendir((mnt_ + "/d0").c_str());
  ASSERT_NE(dir, nullptr);
  std::set<std::string> seen;
  for (int i = 0; i < 2; ++i) {
    dirent* e = ::readdir(dir);
    ASSERT_NE(e, nullptr);
    seen.insert(e->d_name);
  }
  Readers buffered(mnt_, image_.tree, image_.files, {.threads = 1, .direct = false, .seed = 1});
  Readers direct(mnt_, image_.tree, image_.files, {.threads = 2, .direct = true, .seed = 2});
  save(0);
  for (int gen = 1; gen <= 20; ++gen) {
    ASSERT_TRUE(direct.wait_progress(5)) << "no progress before crash " << gen;
    d.process().kill_and_reap();
    d = start(gen, true);
    take_over_and_start(gen);
    save(gen);
  }
  ASSERT_TRUE(direct.wait_progress(20));
  buffered.stop();
  direct.stop();
  EXPECT_EQ(buffered.errors() + direct.errors(), 0U)
      << ::testing::PrintToString(direct.failures()) << ::testing::PrintToString(buffered.failures());
  EXPECT_EQ(buffered.mismatches() + direct.mismatches(), 0U);
  std::string want = read_file(image_.tree + "/" + kept_file);
  std::string got(want.size(), '\0');
  EXPECT_EQ(::pread(kept_fd, got.data(), got.size(), 0), static_cast<ssize_t>(want.size()));
  EXPECT_EQ(got, want);
  ::close(kept_fd);
  auto rest = list_rest(dir);
  ::closedir(dir);
  seen.insert(rest.begin(), rest.end());
  std::set<std::string> expected = {".", ".."};
  for (const auto& e : std::filesystem::directory_iterator(image_.tree + "/d0"))
    expected.insert(e.path().filename());
  EXPECT_EQ(seen, expected) << "readdir continued across 20 takeovers must list every entry once";
}

// A zstd Ferry image (every chunk decoded and verified by the daemon) through kill -9 failovers
// and planned hand-overs: the saved state names the bootstrap and its localfs `dir`, and each
// successor reopens the compressed image on first use, as it does a plain one.
class CompressedTakeoverTest : public TakeoverTest {
 protected:
  SampleImage make_image() override { return make_ferry_sample_image(dir_.path(), "zimg", 40, 22, "zstd"); }
};

TEST_F(CompressedTakeoverTest, CrashesAndHandOversOfACompressedImageLoseNothing) {
  uint64_t tree_bytes = 0, blob_bytes = 0;
  for (const auto& f : image_.files) tree_bytes += std::filesystem::file_size(image_.tree + "/" + f);
  for (const auto& b : std::filesystem::directory_iterator(image_.blob)) blob_bytes += b.file_size();
  ASSERT_LT(blob_bytes * 2, tree_bytes) << "the blob must really be compressed";
  Ferryd d = start(0, false);
  ASSERT_TRUE(wait_state(sock(0), "RUNNING"));
  Readers buffered(mnt_, image_.tree, image_.files, {.threads = 1, .direct = false, .seed = 5});
  Readers direct(mnt_, image_.tree, image_.files, {.threads = 2, .direct = true, .seed = 6});
  save(0);
  for (int gen = 1; gen <= 8; ++gen) {
    ASSERT_TRUE(direct.wait_progress(10)) << "no progress before round " << gen;
    if (gen % 2 == 1) {
      d.process().kill_and_reap();
      d = start(gen, true);
      take_over_and_start(gen);
    } else {
      Ferryd next = start(gen, true);
      take_over_and_start(gen);
      ASSERT_TRUE(api_ok(sock(gen - 1), "PUT", "/api/v1/daemon/exit").ok());
      ASSERT_TRUE(d.process().wait_exit(10s).has_value()) << "old daemon did not exit";
      d = std::move(next);
    }
    save(gen);
  }
  ASSERT_TRUE(direct.wait_progress(20));
  buffered.stop();
  direct.stop();
  EXPECT_GT(direct.ops(), 100U);
  std::printf("[ takeover ] compressed image: %llu direct + %llu buffered verified reads over 8 rounds\n",
              static_cast<unsigned long long>(direct.ops()), static_cast<unsigned long long>(buffered.ops()));
  EXPECT_EQ(buffered.errors() + direct.errors(), 0U)
      << ::testing::PrintToString(direct.failures()) << ::testing::PrintToString(buffered.failures());
  EXPECT_EQ(buffered.mismatches() + direct.mismatches(), 0U);
  for (int gen = 0; gen <= 8; ++gen) {
    EXPECT_EQ(read_file(log(gen)).find("cannot be reopened"), std::string::npos) << read_file(log(gen));
  }
}

// A zstd Ferry image whose blobs live only in a registry (Debian's docker-registry, behind the
// kit's FaultProxy, which delays every blob request so that fetches are in flight when a daemon
// is killed), read through ferryd's registry backend and its blob cache. The promise of issue 16:
// kills and hand-overs lose no read and serve no wrong byte; once a chunk is in the cache no
// daemon fetches it again.
class RegistryTakeoverTest : public TakeoverTest {
 protected:
  static constexpr const char* kRepo = "ferry/lazy";
  SampleImage make_image() override {
    SampleImage image = make_ferry_sample_image(dir_.path(), "rimg", 60, 23, "zstd");
    if (!registry_.ok() || !proxy_.ok()) {
      ADD_FAILURE() << "registry or proxy did not start";
      return image;
    }
    oci::RegistryOptions o;
    o.host = registry_.host();
    o.plain_http = true;
    auto client = oci::RegistryClient::create(o);
    if (!client.ok()) {
      ADD_FAILURE() << client.error().message;
      return image;
    }
    for (const auto& blob : std::filesystem::directory_iterator(image.blob)) {
      oci::Descriptor d;
      d.media_type = "application/octet-stream";
      auto digest = oci::Digest::parse("sha256:" + blob.path().filename().string());
      if (!digest.ok()) {
        ADD_FAILURE() << digest.error().message;
        return image;
      }
      d.digest = *digest;
      d.size = static_cast<int64_t>(blob.file_size());
      auto pushed = (*client)->push_blob_file(kRepo, d, blob.path());
      if (!pushed.ok()) ADD_FAILURE() << pushed.error().message;
      blob_bytes_ += blob.file_size();
    }
    std::filesystem::remove_all(image.blob);  // nothing local: every byte comes from the registry
    image.config = nlohmann::json{
        {"device",
         {{"backend", {{"type", "registry"},
                       {"config", {{"scheme", "http"}, {"host", proxy_.host()}, {"repo", kRepo}, {"timeout", 20}}}}},
          {"cache", {{"type", "blobcache"}, {"config", {{"work_dir", cache_dir()}}}}}}}}
                       .dump();
    image.config_path = dir_ / "rimg-registry.json";
    std::ofstream(image.config_path) << image.config;
    return image;
  }
  [[nodiscard]] std::string cache_dir() const { return dir_ / "cache"; }
  // Stored bytes the registry sent through the proxy so far.
  [[nodiscard]] uint64_t fetched() const { return proxy_.bytes_to_client(); }

  oci::test::RegistryServer registry_;
  FaultProxy proxy_{registry_.ok() ? std::stoi(registry_.host().substr(registry_.host().rfind(':') + 1)) : 1};
  uint64_t blob_bytes_ = 0;
};

TEST_F(RegistryTakeoverTest, KillsAndUpgradesWithFetchesInFlightLoseNothingAndRefetchNothingCached) {
  proxy_.set_fault(testkit::Fault::delay_by(25ms, "/blobs/"));
  Ferryd d = start(0, false);
  ASSERT_TRUE(wait_state(sock(0), "RUNNING")) << read_file(log(0));
  Readers buffered(mnt_, image_.tree, image_.files, {.threads = 1, .direct = false, .seed = 7});
  Readers direct(mnt_, image_.tree, image_.files, {.threads = 2, .direct = true, .seed = 8});
  save(0);
  int gen = 0;
  int killed_while_fetching = 0;
  for (int round = 1; round <= 20; ++round) {
    ASSERT_TRUE(direct.wait_progress(3)) << "no progress before crash " << round;
    // Killed while a blob request is on its way when there is one (the proxy holds each 25 ms).
    if (wait_until([&] { return proxy_.in_flight() > 0; }, 2s)) ++killed_while_fetching;
    d.process().kill_and_reap();
    d = start(++gen, true);
    take_over_and_start(gen);
    save(gen);
  }
  for (int round = 1; round <= 10; ++round) {
    ASSERT_TRUE(direct.wait_progress(3)) << "no progress before upgrade " << round;
    Ferryd next = start(++gen, true);
    take_over_and_start(gen);
    ASSERT_TRUE(api_ok(sock(gen - 1), "PUT", "/api/v1/daemon/exit").ok());
    ASSERT_TRUE(d.process().wait_exit(10s).has_value()) << "old daemon did not exit";
    d = std::move(next);
    save(gen);
  }
  ASSERT_TRUE(direct.wait_progress(20));
  buffered.stop();
  direct.stop();
  EXPECT_GE(killed_while_fetching, 10) << "too few kills found a fetch in flight: the test proves little";
  EXPECT_EQ(buffered.errors() + direct.errors(), 0U)
      << ::testing::PrintToString(direct.failures()) << ::testing::PrintToString(buffered.failures());
  EXPECT_EQ(buffered.mismatches() + direct.mismatches(), 0U);

  // Every file read once more, through one more successor: what is cached is not fetched again.
  for (const auto& f : image_.files) (void)read_file(mnt_ + "/" + f);
  const uint64_t requests_before = proxy_.requests();
  Ferryd last = start(++gen, true);
  take_over_and_start(gen);
  ASSERT_TRUE(api_ok(sock(gen - 1), "PUT", "/api/v1/daemon/exit").ok());
  ASSERT_TRUE(d.process().wait_exit(10s).has_value());
  const std::string drop = "/proc/sys/vm/drop_caches";
  std::ofstream(drop) << "3\n";
  for (const auto& f : image_.files) {
    EXPECT_EQ(read_file(mnt_ + "/" + f), read_file(image_.tree + "/" + f)) << f;
  }
  EXPECT_EQ(proxy_.requests(), requests_before) << "a cached chunk was fetched again";
  // A chunk is fetched again only when its fetch died with a daemon: the bytes fetched stay
  // near the blobs' size.
  std::printf("[ takeover ] registry image: %llu blob bytes, %llu fetched over %d daemons\n",
              static_cast<unsigned long long>(blob_bytes_), static_cast<unsigned long long>(fetched()), gen + 1);
  EXPECT_LT(fetched(), blob_bytes_ + blob_bytes_ / 4);
}

// A read the dead daemon had taken from the kernel but not answered.
class InFlightTest : public TakeoverTest {
 protected:
  std::string stalled() const { return image_.files[3]; }
  std::future<std::string> read_stalled() {
    std::string path = mnt_ + "/" + stalled();
    return std::async(std::launch::async, [path] {
      int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT);
      if (fd < 0) return std::string("open failed");
      alignas(4096) static char buf[4 << 20];
      ssize_t n = ::pread(fd, buf, sizeof buf, 0);
      int err = errno;
      ::close(fd);
      if (n < 0) return std::string("error: ") + std::strerror(err);
      return std::string(buf, static_cast<size_t>(n));
    });
  }
  void start_stalling_daemon(Ferryd& d) {
    // A test daemon whose READs of that file never complete (testkit::StallingFilesystem).
    d = start(0, false, "resend", {}, {"ferryd-stalling", stalled()});
    ASSERT_TRUE(wait_state(sock(0), "RUNNING"));
    save(0);
  }
  // A READ (not the OPEN or LOOKUP before it, which are answered) is in the daemon's hands.
  bool daemon_holds_a_read(int gen) {
    return wait_until(
        [&] {
          auto r = http::http_request(sock(gen), "GET", "/api/v1/metrics/inflight", {}, 2s);
          if (!r.ok() || r->status != 200) return false;
          auto list = nlohmann::json::parse(r->body, nullptr, false);
          if (!list.is_array()) return false;
          return std::any_of(list.begin(), list.end(), [](const nlohmann::json& e) {
            return e.is_object() && e.value("opcode", 0U) == static_cast<unsigned>(FUSE_READ);
          });
        },
        10s);
  }
};

TEST_F(InFlightTest, ResendAnswersTheReadTheDeadDaemonHeld) {
  Ferryd d;
  start_stalling_daemon(d);
  auto result = read_stalled();
  ASSERT_TRUE(daemon_holds_a_read(0)) << "the read never reached the daemon";
  EXPECT_EQ(result.wait_for(200ms), std::future_status::timeout);
  d.process().kill_and_reap();
  d = start(1, true, "resend");
  take_over_and_start(1);
  ASSERT_EQ(result.wait_for(10s), std::future_status::ready) << "resend did not rescue the read";
  EXPECT_EQ(result.get(), read_file(image_.tree + "/" + stalled()));
}

TEST_F(InFlightTest, WithoutResendTheReadWaitsUntilALaterResend) {
  Ferryd d;
  start_stalling_daemon(d);
  auto result = read_stalled();
  ASSERT_TRUE(daemon_holds_a_read(0));
  d.process().kill_and_reap();
  d = start(1, true, "none");
  take_over_and_start(1);
  // Policy none: the kernel keeps the request in the dead daemon's processing queue; its
  // caller waits (uninterruptibly) while the new daemon serves everyone else.
  EXPECT_EQ(read_file(mnt_ + "/" + image_.files[0]), read_file(image_.tree + "/" + image_.files[0]));
  EXPECT_EQ(result.wait_for(1s), std::future_status::timeout) << "policy none must not resend";
  // A later takeover with resend still rescues it.
  save(1);
  d.process().kill_and_reap();
  d = start(2, true, "resend");
  take_over_and_start(2);
  ASSERT_EQ(result.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(result.get(), read_file(image_.tree + "/" + stalled()));
}

// A prepared standby (takeover, then start?when=predecessor-exits) serves nothing while its
// predecessor lives and starts by itself, resending what the dead daemon held, when it dies.
TEST_F(InFlightTest, APreparedStandbyStartsByItselfWhenItsPredecessorDies) {
  Ferryd d;
  start_stalling_daemon(d);
  // Started at nice 19 as the manager starts a standby; it must serve at nice 0.
  Ferryd standby = while_nice(19, [&] { return start(1, true, "resend", {{"FERRY_SERVING_NICE", "0"}}); });
  ASSERT_TRUE(wait_state(sock(1), "INIT"));
  auto r = supervisor_->send([&] { return api_ok(sock(1), "PUT", "/api/v1/daemon/fuse/takeover"); }, 10s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(api_ok(sock(1), "PUT", "/api/v1/daemon/start?when=predecessor-exits").ok());
  auto result = read_stalled();
  ASSERT_TRUE(daemon_holds_a_read(0)) << "the read never reached the daemon";
  EXPECT_EQ(daemon_state(sock(1)), "READY") << "it must not serve while its predecessor lives";
  EXPECT_EQ(result.wait_for(200ms), std::future_status::timeout);
  d.process().kill_and_reap();
  EXPECT_TRUE(wait_state(sock(1), "RUNNING"));
  EXPECT_EQ(thread_nices(standby.pid()), std::set<int>{0}) << "every thread serves at the serving nice";
  ASSERT_EQ(result.wait_for(10s), std::future_status::ready) << "the standby did not resend the held read";
  EXPECT_EQ(result.get(), read_file(image_.tree + "/" + stalled()));
  EXPECT_EQ(read_file(mnt_ + "/" + image_.files[0]), read_file(image_.tree + "/" + image_.files[0]));
}

// Standing by needs a taken-over state, happens once, and a standby told to stop leaves the mount
// to the daemon that serves it.
TEST_F(TakeoverTest, APreparedStandbyIsRefusedWithoutAStateAndLeavesTheMountAlone) {
  Ferryd d = start(0, false);
  ASSERT_TRUE(wait_state(sock(0), "RUNNING"));
  save(0);
  Ferryd standby = start(1, true);
  ASSERT_TRUE(wait_state(sock(1), "INIT"));
  const std::string arm = "/api/v1/daemon/start?when=predecessor-exits";
  auto early = http::http_request(sock(1), "PUT", arm, {}, 2s);
  ASSERT_TRUE(early.ok());
  EXPECT_EQ(early->status, 400) << early->body;
  EXPECT_EQ(daemon_state(sock(1)), "INIT");
  auto r = supervisor_->send([&] { return api_ok(sock(1), "PUT", "/api/v1/daemon/fuse/takeover"); }, 10s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto unknown = http::http_request(sock(1), "PUT", "/api/v1/daemon/start?when=later", {}, 2s);
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, 400) << unknown->body;
  ASSERT_TRUE(api_ok(sock(1), "PUT", arm).ok());
  auto twice = http::http_request(sock(1), "PUT", arm, {}, 2s);
  ASSERT_TRUE(twice.ok());
  EXPECT_EQ(twice->status, 409) << twice->body;
  EXPECT_EQ(daemon_state(sock(1)), "READY");

  ASSERT_EQ(::kill(standby.pid(), SIGTERM), 0);
  int st = standby.process().wait_exit(10s).value_or(-1);
  ASSERT_NE(st, -1) << "the standby did not exit on SIGTERM";
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  EXPECT_TRUE(is_mounted(mnt_)) << "a standby must not unmount its predecessor's mount";
  EXPECT_EQ(read_file(mnt_ + "/" + image_.files[0]), read_file(image_.tree + "/" + image_.files[0]));
  EXPECT_EQ(daemon_state(sock(0)), "RUNNING");
}

TEST_F(TakeoverTest, TwentyHotUpgradesUnderLoadLoseNothing) {
  Ferryd old = start(0, false);
  ASSERT_TRUE(wait_state(sock(0), "RUNNING"));
  Readers buffered(mnt_, image_.tree, image_.files, {.threads = 1, .direct = false, .seed = 3});
  Readers direct(mnt_, image_.tree, image_.files, {.threads = 2, .direct = true, .seed = 4});
  for (int gen = 1; gen <= 20; ++gen) {
    ASSERT_TRUE(direct.wait_progress(5));
    save(gen - 1);  // a fresh state, not a remembered one
    // Started at nice 19, as the manager starts a successor while the daemon serves (nice and
    // FERRY_SERVING_NICE); it must serve at the serving priority once it starts.
    Ferryd next = while_nice(19, [&] { return start(gen, true, "resend", {{"FERRY_SERVING_NICE", "0"}}); });
    EXPECT_EQ(thread_nices(next.pid()), std::set<int>{19}) << "waiting in INIT must not compete with readers";
    take_over_and_start(gen);
    EXPECT_EQ(thread_nices(next.pid()), std::set<int>{0});
    // It did start at 19: ferryd logs the move only when its nice differed.
    EXPECT_NE(read_file(log(gen)).find("back to nice 0"), std::string::npos) << read_file(log(gen));
    ASSERT_TRUE(api_ok(sock(gen - 1), "PUT", "/api/v1/daemon/exit").ok());
    int st = old.process().wait_exit(10s).value_or(-1);
    ASSERT_NE(st, -1) << "old daemon did not exit";
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    old = std::move(next);
  }
  ASSERT_TRUE(direct.wait_progress(20));
  buffered.stop();
  direct.stop();
  EXPECT_EQ(buffered.errors() + direct.errors(), 0U) << ::testing::PrintToString(direct.failures());
  EXPECT_EQ(buffered.mismatches() + direct.mismatches(), 0U);
}

TEST_F(TakeoverTest, BadStatesAreRefusedAndAGoodOneStillWorks) {
  Ferryd d = start(0, false);
  ASSERT_TRUE(wait_state(sock(0), "RUNNING"));
  save(0);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(supervisor_->state().has_value());
  auto good = *supervisor_->state();
  auto fuse_fd = supervisor_->dup_fd();
  ASSERT_TRUE(fuse_fd.ok());
  d.process().kill_and_reap();

  Ferryd next = start(1, true);
  ASSERT_TRUE(wait_state(sock(1), "INIT"));
  auto try_takeover = [&](UniqueFd fd, std::vector<std::byte> bytes) {
    supervisor_->store(std::move(fd), std::move(bytes));
    auto r = supervisor_->send([&] { return api_ok(sock(1), "PUT", "/api/v1/daemon/fuse/takeover"); }, 5s);
    return r.ok() ? std::string() : r.error().message;
  };
  auto dup = [&] { return UniqueFd(::fcntl(fuse_fd->get(), F_DUPFD_CLOEXEC, 0)); };
  std::vector<std::byte> corrupt = good;
  corrupt[corrupt.size() / 2] ^= std::byte{0x5a};
  std::vector<std::byte> truncated(good.begin(), good.begin() + static_cast<long>(good.size() / 2));
  std::vector<std::byte> foreign(good.size(), std::byte{0x42});
  auto opened = ipc::open_envelope(good, 1);
  ASSERT_TRUE(opened.ok());
  std::vector<std::byte> payload(opened->payload.begin(), opened->payload.end());
  std::vector<std::byte> newer = ipc::seal(payload, 99);
  struct Case {
    std::string name;
    std::vector<std::byte> bytes;
    bool fuse;
    std::string word;
  };
  std::vector<Case> cases = {{"corrupt", corrupt, true, "corrupt"},
                             {"truncated", truncated, true, ""},
                             {"foreign", foreign, true, ""},
                             {"newer", newer, true, "99"},
                             {"not /dev/fuse", good, false, "/dev/fuse"}};
  for (auto& c : cases) {
    UniqueFd fd = c.fuse ? dup() : UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    std::string err = try_takeover(std::move(fd), c.bytes);
    EXPECT_FALSE(err.empty()) << c.name << " state was accepted";
    if (!c.word.empty()) {
      EXPECT_NE(err.find(c.word), std::string::npos) << c.name << ": " << err;
    }
    EXPECT_EQ(daemon_state(sock(1)), "INIT") << c.name;
  }
  // A save without any fd.
  supervisor_->store(UniqueFd(), good);
  EXPECT_FALSE(
      supervisor_->send([&] { return api_ok(sock(1), "PUT", "/api/v1/daemon/fuse/takeover"); }, 3s).ok());
  EXPECT_EQ(daemon_state(sock(1)), "INIT");
  // The mount was never touched: the good state still takes over and serves.
  EXPECT_TRUE(try_takeover(dup(), good).empty());
  ASSERT_EQ(daemon_state(sock(1)), "READY");
  ASSERT_TRUE(api_ok(sock(1), "PUT", "/api/v1/daemon/start").ok());
  EXPECT_EQ(read_file(mnt_ + "/" + image_.files[1]), read_file(image_.tree + "/" + image_.files[1]));
}

TEST_F(TakeoverTest, SendfdRefusesWithoutSupervisorAndStateOfAnySizeRoundTrips) {
  // A shared daemon with many images: a state well over 1 MiB.
  std::string ssock = dir_ / "shared.sock";
  Ferryd d = Ferryd::start(
      {"--mountpoint", mnt_, "--apisock", ssock, "--id", "daemon-1", "--supervisor", dir_ / "sup.sock"},
      log(0));
  ASSERT_TRUE(wait_state(ssock, "RUNNING"));
  std::string long_config = image_.config;
  long_config.insert(long_config.size() - 1, ",\"padding\":\"" + std::string(12000, 'p') + "\"");
  for (int i = 0; i < 100; ++i) {
    json body = {{"source", image_.meta}, {"config", long_config}};
    auto r = api(ssock, "POST", "/api/v1/mount?mountpoint=/i" + std::to_string(i), body.dump());
    ASSERT_EQ(r.status, 204) << r.body;
  }
  auto r = supervisor_->receive([&] { return api_ok(ssock, "PUT", "/api/v1/daemon/fuse/sendfd"); }, 20s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_GT(supervisor_->state_size(), 1U << 20);
  d.process().kill_and_reap();
  std::string nsock = dir_ / "shared2.sock";
  Ferryd n = Ferryd::start({"--mountpoint", mnt_, "--apisock", nsock, "--id", "daemon-1", "--supervisor",
                            dir_ / "sup.sock", "--upgrade"},
                           log(1));
  generation_ = 1;
  ASSERT_TRUE(wait_state(nsock, "INIT"));
  auto s = supervisor_->send([&] { return api_ok(nsock, "PUT", "/api/v1/daemon/fuse/takeover"); }, 20s);
  ASSERT_TRUE(s.ok()) << s.error().message;
  ASSERT_TRUE(api_ok(nsock, "PUT", "/api/v1/daemon/start").ok());
  json info = json::parse(api(nsock, "GET", "/api/v1/daemon").body);
  EXPECT_EQ(info["backend_collection"].size(), 100U);
  EXPECT_EQ(read_file(mnt_ + "/i77/" + image_.files[2]), read_file(image_.tree + "/" + image_.files[2]));
}

}  // namespace
}  // namespace ferry::test

namespace ferry::test {
namespace {

int fuse_mounts_at(const std::string& path) {
  std::ifstream in("/proc/self/mounts");
  std::string dev, dir, type, rest;
  int n = 0;
  while (in >> dev >> dir >> type && std::getline(in, rest)) {
    if (dir == path && type.rfind("fuse", 0) == 0) ++n;
  }
  return n;
}

// nydus-snapshotter's failover restarts the daemon with its usual command line (no --upgrade):
// the daemon must notice the live mount and the dead API socket and wait for a takeover.
TEST_F(TakeoverTest, ARestartWithoutUpgradeOverALiveMountWaitsForTakeover) {
  Ferryd d = start(0, false);
  ASSERT_TRUE(wait_state(sock(0), "RUNNING"));
  save(0);
  d.process().kill_and_reap();
  generation_ = 1;
  std::vector<std::string> args = {
      "--mountpoint", mnt_,    "--bootstrap", image_.meta, "--config",     image_.config_path,
      "--apisock",    sock(0), "--id",        "daemon-1",  "--supervisor", dir_ / "sup.sock"};
  Ferryd again = Ferryd::start(args, log(1));
  ASSERT_TRUE(wait_state(sock(0), "INIT")) << "must wait in INIT, not mount on top";
  EXPECT_EQ(fuse_mounts_at(mnt_), 1);
  EXPECT_NE(read_file(log(1)).find("waiting in INIT for a takeover"), std::string::npos);
  auto r = supervisor_->send([&] { return api_ok(sock(0), "PUT", "/api/v1/daemon/fuse/takeover"); }, 10s);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(api_ok(sock(0), "PUT", "/api/v1/daemon/start").ok());
  EXPECT_EQ(read_file(mnt_ + "/" + image_.files[4]), read_file(image_.tree + "/" + image_.files[4]));
  EXPECT_EQ(fuse_mounts_at(mnt_), 1);
}

}  // namespace
}  // namespace ferry::test
