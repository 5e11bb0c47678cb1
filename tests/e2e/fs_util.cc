#include "e2e/fs_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "kit/sample_image.h"

namespace ferry::e2e {

namespace {

uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = testkit::splitmix64(seed);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

uint64_t Rng::below(uint64_t n) {
  if (n == 0) return 0;
  // Modulo bias is irrelevant for test data.
  return next() % n;
}

void Rng::fill(void* data, size_t len) {
  auto* p = static_cast<unsigned char*>(data);
  while (len >= 8) {
    uint64_t v = next();
    std::memcpy(p, &v, 8);
    p += 8;
    len -= 8;
  }
  if (len > 0) {
    uint64_t v = next();
    std::memcpy(p, &v, len);
  }
}

std::string Rng::bytes(size_t len) {
  std::string s(len, '\0');
  fill(s.data(), len);
  return s;
}

std::string Rng::word(size_t len) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(len, 'a');
  for (auto& c : s) c = kAlphabet[below(sizeof(kAlphabet) - 1)];
  return s;
}

std::string errno_text(int err) {
  return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

std::string printable(std::string_view s, size_t max) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (out.size() > max && max > 8) {
    size_t keep = (max - 5) / 2;
    out = out.substr(0, keep) + "[...]" + out.substr(out.size() - keep);
  }
  return out;
}

std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += "'";
  return out;
}

bool read_text_file(const std::string& path, std::string* out) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  out->clear();
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    out->append(buf, static_cast<size_t>(n));
  }
}

void write_text_file(const std::string& path, std::string_view content) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) throw std::runtime_error("open " + path + ": " + errno_text(errno));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("write " + path + ": " + errno_text(errno));
    done += static_cast<size_t>(n);
  }
}

int direct_read(const std::string& path, uint64_t offset, std::string* data) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT);
  if (fd < 0) return errno;
  void* buf = std::aligned_alloc(4096, 4096);  // NOLINT(cppcoreguidelines-no-malloc): O_DIRECT alignment
  const ssize_t n = ::pread(fd, buf, 4096, static_cast<off_t>(offset));
  const int err = n < 0 ? errno : 0;
  if (data != nullptr && n > 0) data->assign(static_cast<char*>(buf), static_cast<size_t>(n));
  std::free(buf);  // NOLINT(cppcoreguidelines-no-malloc)
  ::close(fd);
  return err;
}

}  // namespace ferry::e2e
