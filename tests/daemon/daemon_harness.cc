#include "daemon/daemon_harness.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

namespace ferry::test {
namespace fs = std::filesystem;

namespace {
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct AlignedBuffer {
  explicit AlignedBuffer(size_t n) : size(n), data(static_cast<char*>(std::aligned_alloc(4096, n))) {}
  ~AlignedBuffer() { std::free(data); }  // NOLINT(cppcoreguidelines-no-malloc): O_DIRECT needs alignment
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  size_t size;
  char* data;
};
}  // namespace

namespace {
// `files` regular files (sizes 0 .. ~3 MiB, seeded) in a few directories under img.tree:
// random bytes, or bytes compression shrinks (letters of a small alphabet, random runs).
void write_sample_tree(SampleImage& img, int files, uint64_t seed, bool compressible) {
  fs::create_directories(img.tree);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < files; ++i) {
    std::string sub = "d" + std::to_string(i % 7);
    fs::create_directories(img.tree + "/" + sub);
    std::string rel = sub + "/f" + std::to_string(i);
    size_t size = 0;
    switch (rng() % 4) {
      case 0:
        size = rng() % 5000;
        break;
      case 1:
        size = 4096 * (1 + rng() % 40);
        break;
      case 2:
        size = rng() % (1 << 20);
        break;
      default:
        size = (1 << 20) + rng() % (2 << 20);
        break;
    }
    std::string data(size, '\0');
    for (size_t k = 0; k < size; k += 8) {
      uint64_t v = rng();
      if (compressible) v = 0x6161616161616161ULL + (v & 0x0303030303030303ULL);
      std::memcpy(data.data() + k, &v, std::min<size_t>(8, size - k));
    }
    std::ofstream(img.tree + "/" + rel, std::ios::binary)
        .write(data.data(), static_cast<std::streamsize>(size));
    img.files.push_back(rel);
  }
}
}  // namespace

SampleImage make_sample_image(const std::string& dir, const std::string& name, int files, uint64_t seed) {
  SampleImage img;
  img.tree = dir + "/" + name + "-tree";
  img.meta = dir + "/" + name + ".erofs";
  img.blob = dir + "/" + name + ".blob";
  img.config_path = dir + "/" + name + ".json";
  write_sample_tree(img, files, seed, /*compressible=*/false);
  std::string out;
  int rc = run("mkfs.erofs --quiet --chunksize=65536 --blobdev='" + img.blob + "' '" + img.meta + "' '" +
                   img.tree + "'",
               &out);
  if (rc != 0) throw std::runtime_error("mkfs.erofs failed: " + out);
  img.config = R"({"device":{"backend":{"type":"localfs","config":{"blob_file":")" + img.blob + R"("}}}})";
  std::ofstream(img.config_path) << img.config;
  return img;
}

SampleImage make_ferry_sample_image(const std::string& dir, const std::string& name, int files, uint64_t seed,
                                    const std::string& compressor) {
  SampleImage img;
  img.tree = dir + "/" + name + "-tree";
  img.meta = dir + "/" + name + ".boot";
  img.blob = dir + "/" + name + "-blobs";
  img.config_path = dir + "/" + name + ".json";
  write_sample_tree(img, files, seed, /*compressible=*/true);
  fs::create_directories(img.blob);
  const std::string layer = dir + "/" + name + ".tar";
  std::string out;
  int rc = run("tar --format=pax --numeric-owner -C '" + img.tree + "' -cf '" + layer + "' . 2>&1", &out);
  if (rc != 0) throw std::runtime_error("tar failed: " + out);
  rc = run("'" + binary_path("ferry-image") + "' create --bootstrap '" + img.meta + "' --blob-dir '" +
               img.blob + "' --compressor " + compressor + " --chunk-size 1048576 '" + layer + "' 2>&1",
           &out);
  if (rc != 0) throw std::runtime_error("ferry-image create failed: " + out);
  img.config = R"({"device":{"backend":{"type":"localfs","config":{"dir":")" + img.blob + R"("}}}})";
  std::ofstream(img.config_path) << img.config;
  return img;
}

Ferryd Ferryd::start(const std::vector<std::string>& args, const std::string& log,
                     const std::map<std::string, std::string>& env, const std::vector<std::string>& binary) {
  std::vector<std::string> argv = binary;
  argv[0] = binary_path(argv[0]);
  argv.emplace_back("fuse");
  argv.insert(argv.end(), args.begin(), args.end());
  Ferryd d;
  d.child_ = Child::spawn(argv, log, env);
  return d;
}

http::HttpResponse api(const std::string& sock, const std::string& method, const std::string& path,
                       const std::string& body) {
  auto r = http::http_request(sock, method, path, body, std::chrono::seconds(20));
  if (!r.ok()) {
    ADD_FAILURE() << method << " " << path << ": " << r.error().message;
    return http::HttpResponse{-1, r.error().message, ""};
  }
  return *r;
}

std::string daemon_state(const std::string& sock) {
  auto r = http::http_request(sock, "GET", "/api/v1/daemon", {}, std::chrono::seconds(2));
  if (!r.ok() || r->status != 200) return "";
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.contains("state")) return "";
  return j["state"].get<std::string>();
}

bool wait_state(const std::string& sock, const std::string& state, std::chrono::milliseconds timeout) {
  return wait_until([&] { return daemon_state(sock) == state; }, timeout);
}

// ---- Readers -------------------------------------------------------------------------------

Readers::Readers(std::string mount, std::string source, std::vector<std::string> files, Options options)
    : mount_(std::move(mount)), source_(std::move(source)), files_(std::move(files)), options_(options) {
  last_ok_ns_.store(now_ns());
  for (int i = 0; i < options_.threads; ++i) {
    threads_.emplace_back([this, i] {
      run(i);
      finished_.fetch_add(1);
    });
  }
}

Readers::~Readers() {
  stop();
}

void Readers::stop(std::chrono::milliseconds deadline) {
  if (threads_.empty()) return;
  stop_.store(true);
  int count = static_cast<int>(threads_.size());
  if (!wait_until([&] { return finished_.load() == count; }, deadline)) {
    ADD_FAILURE() << count - finished_.load() << " reader(s) of " << mount_ << " still blocked after "
                  << deadline.count() << " ms: a request was lost; aborting the FUSE connection";
    ::umount2(mount_.c_str(), MNT_FORCE);
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Readers::note_failure(const std::string& what) {
  std::lock_guard lock(mu_);
  if (failures_.size() < 20) failures_.push_back(what);
}

std::vector<std::string> Readers::failures() const {
  std::lock_guard lock(mu_);
  return failures_;
}

bool Readers::wait_progress(uint64_t n, std::chrono::milliseconds timeout) const {
  uint64_t target = ops_.load() + n;
  return wait_until([&] { return ops_.load() >= target; }, timeout);
}

std::chrono::microseconds Readers::max_gap() const {
  return std::chrono::microseconds(max_gap_ns_.load() / 1000);
}

void Readers::reset_gap() {
  max_gap_ns_.store(0);
  last_ok_ns_.store(now_ns());
}

void Readers::run(int index) {
  std::mt19937_64 rng(options_.seed * 7919 + static_cast<uint64_t>(index));
  int flags = O_RDONLY | O_CLOEXEC | (options_.direct ? O_DIRECT : 0);
  // Files opened before anything happens and kept open throughout.
  std::vector<std::pair<std::string, int>> kept;
  for (int k = 0; k < 3 && !files_.empty(); ++k) {
    const std::string& rel = files_[rng() % files_.size()];
    int fd = ::open((mount_ + "/" + rel).c_str(), flags);
    if (fd >= 0) kept.emplace_back(rel, fd);
  }
  AlignedBuffer got(options_.max_len);
  std::string want(options_.max_len, '\0');
  while (!stop_.load() && !files_.empty()) {
    bool use_kept = !kept.empty() && (rng() % 2) == 0;
    std::string rel;
    int fd = -1;
    bool owned = false;
    if (use_kept) {
      auto& k = kept[rng() % kept.size()];
      rel = k.first;
      fd = k.second;
    } else {
      rel = files_[rng() % files_.size()];
      fd = ::open((mount_ + "/" + rel).c_str(), flags);
      owned = true;
      if (fd < 0) {
        errors_.fetch_add(1);
        note_failure("open " + rel + ": " + std::strerror(errno));
        continue;
      }
    }
    struct stat st {};
    ::stat((source_ + "/" + rel).c_str(), &st);
    uint64_t size = static_cast<uint64_t>(st.st_size);
    uint64_t off = size == 0 ? 0 : (rng() % size) & ~uint64_t{4095};
    size_t len = 4096 * (1 + rng() % (options_.max_len / 4096));
    ssize_t n = ::pread(fd, got.data, len, static_cast<off_t>(off));
    int err = errno;
    if (owned) ::close(fd);
    if (n < 0) {
      errors_.fetch_add(1);
      note_failure("read " + rel + " @" + std::to_string(off) + ": " + std::strerror(err));
      continue;
    }
    int src = ::open((source_ + "/" + rel).c_str(), O_RDONLY | O_CLOEXEC);
    ssize_t m = ::pread(src, want.data(), len, static_cast<off_t>(off));
    ::close(src);
    if (m != n || std::memcmp(want.data(), got.data, static_cast<size_t>(n)) != 0) {
      mismatches_.fetch_add(1);
      note_failure("wrong bytes in " + rel + " @" + std::to_string(off) + " (" + std::to_string(n) + " vs " +
                   std::to_string(m) + ")");
      continue;
    }
    int64_t now = now_ns();
    int64_t gap = now - last_ok_ns_.exchange(now);
    int64_t prev = max_gap_ns_.load();
    while (gap > prev && !max_gap_ns_.compare_exchange_weak(prev, gap)) {
    }
    ops_.fetch_add(1);
  }
  for (auto& [rel, fd] : kept) ::close(fd);
}

}  // namespace ferry::test
