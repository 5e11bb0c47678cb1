#include "storage/blob_cache_file.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include "common/crc32c.h"
#include "common/dirs.h"

namespace ferry::storage {

namespace {

Status pread_all(int fd, std::span<std::byte> out, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error(EIO, "reading the blob cache file '" + path + "'");
    }
    if (n == 0) {
      return Error{EIO, "the blob cache file '" + path + "' ends before offset " +
                            std::to_string(offset + out.size()) + " (truncated by someone else?)"};
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Status pwrite_all(int fd, std::span<const std::byte> data, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("writing the blob cache file '" + path + "'");
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

// An empty map of `id`, written completely (and synced) under a private name beside `path`; the
// caller links or renames it into place. Returns the temporary's path.
Result<std::string> write_empty_map(const std::string& path, const ChunkMapIdentity& id) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return errno_error("cannot create '" + tmp + "' (is the blob cache's work_dir writable?)");
  const std::vector<std::byte> header = encode_chunk_map_header(id);
  Status st = pwrite_all(fd.get(), header, 0, tmp);
  if (st.ok() && ::ftruncate(fd.get(), static_cast<off_t>(chunk_map_size(id.chunk_count))) != 0) {
    st = errno_error("cannot size '" + tmp + "'");
  }
  // Synced before it gets its name: after a power loss the map is this one, or the old one.
  if (st.ok() && ::fsync(fd.get()) != 0) st = errno_error("cannot sync '" + tmp + "'");
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return std::move(st).error();
  }
  return tmp;
}

// Why the map open on `fd` is not a map of `id`, or ok.
Status check_open_map(int fd, const std::string& path, const ChunkMapIdentity& id) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_error("cannot stat '" + path + "'");
  std::vector<std::byte> header(std::min<uint64_t>(kChunkMapHeaderSize, static_cast<uint64_t>(st.st_size)));
  FERRY_TRY(pread_all(fd, header, 0, path));
  return check_chunk_map(header, static_cast<uint64_t>(st.st_size), id);
}

// Opens the map at `path`, creating it when missing and replacing it when unusable. `rebuilt`
// says whether an unusable one was replaced.
Result<UniqueFd> open_map(const std::string& path, const ChunkMapIdentity& id, bool& rebuilt) {
  // A few rounds: another daemon may create or replace the file between our steps.
  for (int round = 0; round < 4; ++round) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd && errno != ENOENT) return errno_error("cannot open the blob cache's chunk map '" + path + "'");
    if (!fd) {
      FERRY_ASSIGN(const std::string tmp, write_empty_map(path, id));
      // link(), not rename(): when another daemon created the map meanwhile, use its file.
      const int rc = ::link(tmp.c_str(), path.c_str());
      const int err = errno;
      ::unlink(tmp.c_str());
      if (rc != 0 && err != EEXIST) return errno_error(err, "cannot create the chunk map '" + path + "'");
      continue;
    }
    Status ok = check_open_map(fd.get(), path, id);
    if (ok.ok()) {
      struct stat st {};
      if (::fstat(fd.get(), &st) == 0 && (st.st_mode & 077) != 0 && ::fchmod(fd.get(), 0600) != 0) {
        return errno_error("cannot make '" + path + "' private");
      }
      return fd;
    }
    spdlog::warn("blob cache: chunk map '{}' is unusable ({}): replacing it with an empty one; its chunks "
                 "will be fetched again",
                 path, ok.error().message);
    FERRY_ASSIGN(const std::string tmp, write_empty_map(path, id));
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      Error e = errno_error("cannot replace the chunk map '" + path + "'");
      ::unlink(tmp.c_str());
      return e;
    }
    rebuilt = true;
  }
  return Error{EIO, "the chunk map '" + path + "' keeps changing while it is opened (another daemon "
                    "replacing it?)"};
}

}  // namespace

BlobCacheFile::BlobCacheFile(Key /*unused*/, std::string data_path, std::string map_path, UniqueFd data,
                             UniqueFd map, uint32_t chunk_count)
    : data_path_(std::move(data_path)),
      map_path_(std::move(map_path)),
      data_(std::move(data)),
      map_(std::move(map)),
      chunk_count_(chunk_count) {}

Result<std::unique_ptr<BlobCacheFile>> BlobCacheFile::open(const std::string& work_dir,
                                                           const erofs::BlobInfo& blob, uint32_t chunk_size) {
  if (work_dir.empty()) return Error{EINVAL, "the blob cache needs a work_dir"};
  Status made = make_dirs(work_dir, 0700);
  if (!made.ok()) return made.error().context("blob cache work_dir '" + work_dir + "'");
  if (::access(work_dir.c_str(), W_OK | X_OK) != 0) {
    return errno_error("blob cache work_dir '" + work_dir + "' is not writable");
  }
  const std::string data_path = work_dir + "/" + blob_data_file_name(blob.digest);
  const std::string map_path = work_dir + "/" + chunk_map_file_name(blob.digest);

  UniqueFd data(::open(data_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!data) {
    return errno_error("cannot open the blob cache file '" + data_path + "' (work_dir '" + work_dir +
                       "' must be writable)");
  }
  struct stat st {};
  if (::fstat(data.get(), &st) != 0) return errno_error("cannot stat '" + data_path + "'");
  if (!S_ISREG(st.st_mode)) return Error{EINVAL, "the blob cache file '" + data_path + "' is not a regular file"};
  if ((st.st_mode & 077) != 0 && ::fchmod(data.get(), 0600) != 0) {
    return errno_error("cannot make '" + data_path + "' private");
  }
  // Grown, never shrunk: another daemon may be using it (every size it can have is this one).
  if (static_cast<uint64_t>(st.st_size) < blob.device_size &&
      ::ftruncate(data.get(), static_cast<off_t>(blob.device_size)) != 0) {
    return errno_error("cannot size the blob cache file '" + data_path + "'");
  }

  const ChunkMapIdentity id{.blob = blob.digest, .chunk_count = blob.chunk_count, .chunk_size = chunk_size};
  bool rebuilt = false;
  FERRY_ASSIGN(UniqueFd map, open_map(map_path, id, rebuilt));
  auto file = std::make_unique<BlobCacheFile>(Key{}, data_path, map_path, std::move(data), std::move(map),
                                              blob.chunk_count);
  file->map_rebuilt_ = rebuilt;
  std::vector<std::byte> records(uint64_t{blob.chunk_count} * kChunkMapRecordSize);
  FERRY_TRY(pread_all(file->map_.get(), records, chunk_record_offset(0), map_path));
  for (size_t at = 0; at < records.size(); at += kChunkMapRecordSize) {
    if (decode_chunk_record(std::span(records).subspan(at).first<kChunkMapRecordSize>()).present)
      ++file->present_at_open_;
  }
  return file;
}

Result<ChunkRecord> BlobCacheFile::record(uint64_t index) const {
  if (index >= chunk_count_) return Error{EINVAL, "chunk " + std::to_string(index) + " is not in '" + map_path_ + "'"};
  std::array<std::byte, kChunkMapRecordSize> bytes{};
  FERRY_TRY(pread_all(map_.get(), bytes, chunk_record_offset(index), map_path_));
  return decode_chunk_record(bytes);
}

Status BlobCacheFile::read(uint64_t offset, std::span<std::byte> out) const {
  return pread_all(data_.get(), out, offset, data_path_);
}

Status BlobCacheFile::write_data(uint64_t device_offset, std::span<const std::byte> data) const {
  return pwrite_all(data_.get(), data, device_offset, data_path_);
}

Status BlobCacheFile::write_record(uint64_t index, const ChunkRecord& record) const {
  if (index >= chunk_count_) return Error{EINVAL, "chunk " + std::to_string(index) + " is not in '" + map_path_ + "'"};
  return pwrite_all(map_.get(), encode_chunk_record(record), chunk_record_offset(index), map_path_);
}

Status BlobCacheFile::write_chunk(uint64_t index, uint64_t device_offset, std::span<const std::byte> data) const {
  FERRY_TRY(write_data(device_offset, data));
  return write_record(index, ChunkRecord{.present = true, .crc = crc32c_update(0, data)});
}

}  // namespace ferry::storage
