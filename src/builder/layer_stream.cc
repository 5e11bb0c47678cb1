#include "builder/layer_stream.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <new>
#include <vector>

#include "common/unique_fd.h"

namespace ferry::builder {
namespace {

constexpr size_t kBufferSize = 1U << 20U;

// Raw input: a file read in pieces, or one buffer.
class Input {
 public:
  Input(std::string path, std::span<const std::byte> bytes) : path_(std::move(path)), bytes_(bytes) {}

  Status open() {
    if (path_.empty()) return {};
    fd_ = UniqueFd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd_) return errno_error("cannot open");
    buffer_.resize(kBufferSize);
    return {};
  }

  // The next raw bytes; empty at the end.
  Result<std::span<const std::byte>> next() {
    if (path_.empty()) return std::exchange(bytes_, {});
    for (;;) {
      ssize_t n = ::read(fd_.get(), buffer_.data(), buffer_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno_error("cannot read");
      return std::span<const std::byte>(buffer_).first(static_cast<size_t>(n));
    }
  }

 private:
  std::string path_;
  std::span<const std::byte> bytes_;
  UniqueFd fd_;
  std::vector<std::byte> buffer_;
};

class PlainStream final : public LayerStream {
 public:
  PlainStream(Input input, std::span<const std::byte> first) : input_(std::move(input)), first_(first) {}
  Result<std::span<const std::byte>> read() override {
    if (!first_.empty()) return std::exchange(first_, {});
    return input_.next();
  }
  Status finish() override { return {}; }
  [[nodiscard]] const char* format() const override { return "tar"; }

 private:
  Input input_;
  std::span<const std::byte> first_;
};

bool all_zero(std::span<const std::byte> bytes) {
  for (std::byte b : bytes) {
    if (b != std::byte{0}) return false;
  }
  return true;
}

class GzipStream final : public LayerStream {
 public:
  GzipStream(Input input, std::span<const std::byte> first)
      : input_(std::move(input)), in_(first), out_(kBufferSize) {
    if (inflateInit2(&z_, 15 + 32) != Z_OK) throw std::bad_alloc();
  }
  ~GzipStream() override { inflateEnd(&z_); }
  GzipStream(const GzipStream&) = delete;
  GzipStream& operator=(const GzipStream&) = delete;

  Result<std::span<const std::byte>> read() override {
    while (!ended_) {
      if (in_.empty()) {
        FERRY_ASSIGN(in_, input_.next());
        if (in_.empty()) {
          if (member_done_) {
            ended_ = true;
            break;
          }
          return Error{EIO, "truncated gzip stream"};
        }
      }
      if (member_done_) {
        // After a member: another member, or zero padding to the end.
        if (std::to_integer<uint8_t>(in_[0]) != 0x1f) {
          if (!all_zero(in_)) return Error{EIO, "gzip: garbage after the compressed data"};
          in_ = {};
          continue;
        }
        inflateReset(&z_);
        member_done_ = false;
      }
      z_.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in_.data()));
      z_.avail_in = static_cast<uInt>(in_.size());
      z_.next_out = reinterpret_cast<Bytef*>(out_.data());
      z_.avail_out = static_cast<uInt>(out_.size());
      const int r = inflate(&z_, Z_NO_FLUSH);
      const size_t consumed = in_.size() - z_.avail_in;
      in_ = in_.subspan(consumed);
      if (r == Z_STREAM_END) {
        member_done_ = true;
      } else if (r != Z_OK && r != Z_BUF_ERROR) {
        return Error{EIO, std::string("gzip: ") + (z_.msg != nullptr ? z_.msg : "corrupt data")};
      }
      const size_t produced = out_.size() - z_.avail_out;
      if (produced > 0) return std::span<const std::byte>(out_).first(produced);
      if (consumed == 0 && r != Z_STREAM_END) return Error{EIO, "gzip: corrupt data (no progress)"};
    }
    return std::span<const std::byte>{};
  }

  [[nodiscard]] const char* format() const override { return "tar+gzip"; }

 private:
  Input input_;
  std::span<const std::byte> in_;
  std::vector<std::byte> out_;
  z_stream z_{};
  bool member_done_ = false;
  bool ended_ = false;
};

class ZstdStream final : public LayerStream {
 public:
  ZstdStream(Input input, std::span<const std::byte> first)
      : input_(std::move(input)), in_(first), out_(ZSTD_DStreamOutSize()), d_(ZSTD_createDStream()) {
    if (d_ == nullptr) throw std::bad_alloc();
  }
  ~ZstdStream() override { ZSTD_freeDStream(d_); }
  ZstdStream(const ZstdStream&) = delete;
  ZstdStream& operator=(const ZstdStream&) = delete;

  Result<std::span<const std::byte>> read() override {
    while (!ended_) {
      if (in_.empty()) {
        FERRY_ASSIGN(in_, input_.next());
        if (in_.empty()) {
          if (!frame_done_) return Error{EIO, "truncated zstd stream"};
          ended_ = true;
          break;
        }
      }
      ZSTD_inBuffer in{in_.data(), in_.size(), 0};
      ZSTD_outBuffer out{out_.data(), out_.size(), 0};
      const size_t r = ZSTD_decompressStream(d_, &out, &in);
      in_ = in_.subspan(in.pos);
      if (ZSTD_isError(r) != 0U) return Error{EIO, std::string("zstd: ") + ZSTD_getErrorName(r)};
      frame_done_ = r == 0;
      if (out.pos > 0) return std::span<const std::byte>(out_).first(out.pos);
    }
    return std::span<const std::byte>{};
  }

  [[nodiscard]] const char* format() const override { return "tar+zstd"; }

 private:
  Input input_;
  std::span<const std::byte> in_;
  std::vector<std::byte> out_;
  ZSTD_DStream* d_;
  bool frame_done_ = false;
  bool ended_ = false;
};

}  // namespace

Status LayerStream::finish() {
  for (;;) {
    FERRY_ASSIGN(auto piece, read());
    if (piece.empty()) return {};
  }
}

Result<std::unique_ptr<LayerStream>> LayerStream::open(const std::string& path,
                                                       std::span<const std::byte> bytes) {
  Input input(path, bytes);
  FERRY_TRY(input.open());
  // Sniff the format from the first piece (a file's first read returns the whole first MiB or
  // the whole file; four bytes decide).
  FERRY_ASSIGN(auto first, input.next());
  const auto at = [&](size_t i) { return i < first.size() ? std::to_integer<uint8_t>(first[i]) : 0; };
  if (first.size() >= 2 && at(0) == 0x1f && at(1) == 0x8b) {
    return std::unique_ptr<LayerStream>(std::make_unique<GzipStream>(std::move(input), first));
  }
  if (first.size() >= 4 && at(0) == 0x28 && at(1) == 0xb5 && at(2) == 0x2f && at(3) == 0xfd) {
    return std::unique_ptr<LayerStream>(std::make_unique<ZstdStream>(std::move(input), first));
  }
  return std::unique_ptr<LayerStream>(std::make_unique<PlainStream>(std::move(input), first));
}

}  // namespace ferry::builder
