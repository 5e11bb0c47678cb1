#include "storage/chunk_codec.h"

#include <lz4.h>
#include <openssl/evp.h>
#include <zstd.h>

#include <climits>
#include <cstring>
#include <new>
#include <string>

namespace ferry::storage {

std::string_view compression_name(Compression c) {
  switch (c) {
    case Compression::kNone:
      return "none";
    case Compression::kZstd:
      return "zstd";
    case Compression::kLz4:
      return "lz4";
  }
  return "unknown";
}

Result<Compression> parse_compression(std::string_view name) {
  for (Compression c : {Compression::kNone, Compression::kZstd, Compression::kLz4}) {
    if (name == compression_name(c)) return c;
  }
  return Error{EINVAL, "unknown compressor '" + std::string(name) + "' (choose zstd, lz4 or none)"};
}

struct ChunkCompressor::Contexts {
  ZSTD_CCtx* zstd = nullptr;
  ~Contexts() { ZSTD_freeCCtx(zstd); }
};

ChunkCompressor::ChunkCompressor(Compression algorithm, int level)
    : algorithm_(algorithm), level_(level == 0 ? 3 : level), ctx_(std::make_unique<Contexts>()) {
  if (algorithm_ == Compression::kZstd) {
    ctx_->zstd = ZSTD_createCCtx();
    if (ctx_->zstd == nullptr) throw std::bad_alloc();
  }
}

ChunkCompressor::~ChunkCompressor() = default;

Result<Compression> ChunkCompressor::compress(std::span<const std::byte> in, std::vector<std::byte>& out) {
  size_t n = 0;
  switch (algorithm_) {
    case Compression::kNone:
      break;
    case Compression::kZstd: {
      out.resize(ZSTD_compressBound(in.size()));
      n = ZSTD_compressCCtx(ctx_->zstd, out.data(), out.size(), in.data(), in.size(), level_);
      if (ZSTD_isError(n) != 0U)
        return Error{EIO, std::string("zstd compression failed: ") + ZSTD_getErrorName(n)};
      break;
    }
    case Compression::kLz4: {
      if (in.size() > LZ4_MAX_INPUT_SIZE) return Error{EINVAL, "chunk too large for lz4"};
      const int bound = LZ4_compressBound(static_cast<int>(in.size()));
      out.resize(static_cast<size_t>(bound));
      const int r =
          LZ4_compress_default(reinterpret_cast<const char*>(in.data()), reinterpret_cast<char*>(out.data()),
                               static_cast<int>(in.size()), bound);
      if (r <= 0) return Error{EIO, "lz4 compression failed"};
      n = static_cast<size_t>(r);
      break;
    }
  }
  if (algorithm_ == Compression::kNone || n >= in.size()) {
    out.assign(in.begin(), in.end());
    return Compression::kNone;
  }
  out.resize(n);
  return algorithm_;
}

Status decompress_chunk(Compression compression, std::span<const std::byte> stored,
                        std::span<std::byte> out) {
  switch (compression) {
    case Compression::kNone:
      if (stored.size() != out.size()) {
        return Error{EIO, "stored chunk is " + std::to_string(stored.size()) + " bytes, expected " +
                              std::to_string(out.size())};
      }
      std::memcpy(out.data(), stored.data(), out.size());
      return {};
    case Compression::kZstd: {
      // One context per thread, reused: ZSTD_decompress() would allocate one per chunk.
      struct DCtx {
        ZSTD_DCtx* ctx = ZSTD_createDCtx();
        ~DCtx() { ZSTD_freeDCtx(ctx); }
      };
      thread_local DCtx dctx;
      if (dctx.ctx == nullptr) return Error{ENOMEM, "cannot allocate a zstd decompression context"};
      const size_t n = ZSTD_decompressDCtx(dctx.ctx, out.data(), out.size(), stored.data(), stored.size());
      if (ZSTD_isError(n) != 0U)
        return Error{EIO, std::string("zstd decompression failed: ") + ZSTD_getErrorName(n)};
      if (n != out.size()) {
        return Error{EIO, "zstd chunk decompressed to " + std::to_string(n) + " bytes, expected " +
                              std::to_string(out.size())};
      }
      return {};
    }
    case Compression::kLz4: {
      if (stored.size() > INT_MAX || out.size() > INT_MAX) return Error{EIO, "lz4 chunk too large"};
      const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(stored.data()),
                                        reinterpret_cast<char*>(out.data()), static_cast<int>(stored.size()),
                                        static_cast<int>(out.size()));
      if (n < 0 || static_cast<size_t>(n) != out.size()) {
        return Error{EIO, "lz4 chunk is corrupt or decompresses to " + std::to_string(n) +
                              " bytes, expected " + std::to_string(out.size())};
      }
      return {};
    }
  }
  return Error{EIO, "unknown compression " + std::to_string(static_cast<int>(compression))};
}

struct Sha256::Ctx {
  EVP_MD_CTX* md = nullptr;
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  ctx_->md = EVP_MD_CTX_new();
  if (ctx_->md == nullptr || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) throw std::bad_alloc();
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&& other) noexcept = default;
Sha256& Sha256::operator=(Sha256&& other) noexcept = default;

void Sha256::update(std::span<const std::byte> data) {
  EVP_DigestUpdate(ctx_->md, data.data(), data.size());
}

Digest Sha256::finish() {
  Digest d{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_->md, d.data(), &len);
  return d;
}

Digest sha256(std::span<const std::byte> data) {
  // Fetched once: EVP_sha256() makes OpenSSL 3 look the algorithm up (under a global lock) on
  // every digest.
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  Digest d{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), d.data(), &len, md != nullptr ? md : EVP_sha256(), nullptr);
  return d;
}

}  // namespace ferry::storage
