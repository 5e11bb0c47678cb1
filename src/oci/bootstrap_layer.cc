#include "oci/bootstrap_layer.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <array>
#include <cstring>

#include "common/unique_fd.h"
#include "oci/file_util.h"

namespace ferry::oci {

namespace {

constexpr size_t kBlock = 512;
constexpr uint64_t kMaxUstarSize = 077777777777ULL;  // 11 octal digits

void put_octal(char* field, size_t width, uint64_t value) {
  // width-1 digits, zero-padded, then NUL.
  for (size_t i = width - 1; i-- > 0;) {
    field[i] = static_cast<char>('0' + (value & 7));
    value >>= 3;
  }
  field[width - 1] = '\0';
}

std::array<char, kBlock> ustar_header(std::string_view name, char type, uint32_t mode, uint64_t size) {
  std::array<char, kBlock> h{};
  std::memcpy(h.data(), name.data(), name.size());  // < 100 bytes: both names are short
  put_octal(h.data() + 100, 8, mode);
  put_octal(h.data() + 108, 8, 0);  // uid
  put_octal(h.data() + 116, 8, 0);  // gid
  put_octal(h.data() + 124, 12, size);
  put_octal(h.data() + 136, 12, 0);  // mtime
  h[156] = type;
  std::memcpy(h.data() + 257, "ustar", 6);  // magic with its NUL
  std::memcpy(h.data() + 263, "00", 2);     // version
  std::memcpy(h.data() + 265, "root", 4);
  std::memcpy(h.data() + 297, "root", 4);
  std::memset(h.data() + 148, ' ', 8);  // the checksum counts its own field as spaces
  unsigned sum = 0;
  for (char c : h) sum += static_cast<unsigned char>(c);
  put_octal(h.data() + 148, 7, sum);  // 6 digits, NUL, and the space left from above
  return h;
}

}  // namespace

Result<Digest> write_bootstrap_tar(const std::string& bootstrap_path, const std::string& tar_path) {
  UniqueFd in(::open(bootstrap_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return errno_error("opening bootstrap " + bootstrap_path);
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) return errno_error("stat " + bootstrap_path);
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size > kMaxUstarSize) return Error{EFBIG, bootstrap_path + ": too large for the bootstrap layer's tar"};
  FERRY_ASSIGN(TempFile tmp, TempFile::beside(tar_path));
  Sha256 hash;
  const auto emit = [&](const void* data, size_t n) -> Status {
    hash.update(data, n);
    return write_all(tmp.fd(), data, n);
  };
  const auto dir = ustar_header("image/", '5', 0755, 0);
  FERRY_TRY(emit(dir.data(), dir.size()));
  const auto file = ustar_header(kBootstrapPathInLayer, '0', 0644, size);
  FERRY_TRY(emit(file.data(), file.size()));
  std::array<char, 1 << 16> buf{};
  uint64_t copied = 0;
  while (copied < size) {
    const ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("reading bootstrap " + bootstrap_path);
    if (n == 0) return Error{EIO, bootstrap_path + ": shrank while being read"};
    FERRY_TRY(emit(buf.data(), static_cast<size_t>(n)));
    copied += static_cast<uint64_t>(n);
  }
  const std::array<char, 2 * kBlock> zeros{};
  FERRY_TRY(emit(zeros.data(), (kBlock - size % kBlock) % kBlock));  // pad the file's last block
  FERRY_TRY(emit(zeros.data(), zeros.size()));                       // end of archive
  FERRY_TRY(tmp.commit(tar_path));
  return hash.finish();
}

}  // namespace ferry::oci
