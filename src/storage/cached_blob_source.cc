#include "storage/cached_blob_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "storage/blob_chunks.h"
#include "storage/chunk_codec.h"

namespace ferry::storage {

namespace {

constexpr uint8_t kUnknown = 0;   // not looked at by this process yet (or its fetch failed)
constexpr uint8_t kVerified = 1;  // present on disk, its bytes checked against the table
constexpr uint8_t kDamaged = 2;   // its record says present but its bytes are wrong: fetch it

// A whole chunk read back from the cache to be checked, per thread: grown to the largest, kept.
std::span<std::byte> check_scratch(size_t n) {
  thread_local std::vector<std::byte> scratch;
  if (scratch.size() < n) scratch.resize(n);
  return std::span(scratch).first(n);
}

unsigned stripe_of_this_thread() {
  static std::atomic<unsigned> next{0};
  thread_local const unsigned stripe = next.fetch_add(1, std::memory_order_relaxed);
  return stripe;
}

}  // namespace

// One fetch of one chunk: its owner decodes into `bytes`, then sets `done` and wakes the waiters.
struct CachedBlobSource::Flight {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Status status;                 // under mu, once done
  std::vector<std::byte> bytes;  // the verified chunk, once done and ok (read-only then)

  Status wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
    return status;
  }
};

Result<std::shared_ptr<CachedBlobSource>> CachedBlobSource::open(std::shared_ptr<const erofs::ChunkTable> table,
                                                                 uint16_t device_id,
                                                                 std::shared_ptr<const StoredChunkReader> stored,
                                                                 BlobCacheOptions options) {
  if (table == nullptr || device_id == 0 || device_id > table->blobs.size()) {
    return Error{EINVAL, "the chunk table has no blob for device " + std::to_string(device_id)};
  }
  if (stored == nullptr) return Error{EINVAL, "a blob cache needs a reader of the stored chunks"};
  FERRY_ASSIGN(auto file, BlobCacheFile::open(options.work_dir, table->blobs[device_id - 1U], table->chunk_size));
  return std::make_shared<CachedBlobSource>(Key{}, std::move(table), device_id, std::move(stored),
                                            std::move(options), std::move(file));
}

CachedBlobSource::CachedBlobSource(Key /*unused*/, std::shared_ptr<const erofs::ChunkTable> table,
                                   uint16_t device_id, std::shared_ptr<const StoredChunkReader> stored,
                                   BlobCacheOptions options, std::unique_ptr<BlobCacheFile> file)
    : table_(std::move(table)),
      blob_(table_->blobs[device_id - 1U]),
      chunks_(table_->chunks_of(device_id)),
      stored_(std::move(stored)),
      options_(std::move(options)),
      file_(std::move(file)),
      digest_hex_(erofs::digest_hex(blob_.digest)),
      state_(std::make_unique<std::atomic<uint8_t>[]>(chunks_.size())) {  // NOLINT(*-avoid-c-arrays)
  name_ = "blob sha256:" + digest_hex_ + " (cached in " + options_.work_dir + ", from " + stored_->name() + ")";
  present_.store(static_cast<int64_t>(file_->present_at_open()), std::memory_order_relaxed);
}

CachedBlobSource::~CachedBlobSource() = default;

BlobCacheStats CachedBlobSource::stats() const {
  BlobCacheStats s;
  for (const Stripe& st : hits_) s.hits += st.hits.load(std::memory_order_relaxed);
  s.misses = misses_.load(std::memory_order_relaxed);
  s.bytes_fetched = bytes_fetched_.load(std::memory_order_relaxed);
  s.fetch_requests = fetch_requests_.load(std::memory_order_relaxed);
  s.chunks_total = chunks_.size();
  // This process's view (other daemons may add chunks it has not counted): kept in range.
  s.chunks_present = static_cast<uint64_t>(
      std::clamp<int64_t>(present_.load(std::memory_order_relaxed), 0, static_cast<int64_t>(s.chunks_total)));
  s.corrupt_refetched = corrupt_refetched_.load(std::memory_order_relaxed);
  return s;
}

void CachedBlobSource::count_hit() const {
  std::atomic<uint64_t>& h = hits_[stripe_of_this_thread() % kStripes].hits;
  h.fetch_add(1, std::memory_order_relaxed);
}

Error CachedBlobSource::chunk_error(uint64_t index, const std::string& what) const {
  return storage::chunk_error(digest_hex_, blob_.first_chunk + index, chunks_[index], what);
}

Status CachedBlobSource::read_exact(uint64_t offset, std::span<std::byte> out) const {
  if (offset > blob_.device_size || out.size() > blob_.device_size - offset) {
    return past_end_error(name_, offset, out.size(), blob_.device_size);
  }
  if (out.empty()) return {};
  uint64_t index = chunk_at(chunks_, offset);
  // Hot path: every chunk verified, each piece one pread straight into `out`.
  while (!out.empty()) {
    if (index >= chunks_.size()) return no_chunk_error(name_, offset);
    const erofs::ChunkInfo& c = chunks_[index];
    const uint64_t within = offset - c.device_offset;
    if (within >= padded_chunk_size(c.size)) return no_chunk_error(name_, offset);
    if (state_[index].load(std::memory_order_acquire) != kVerified) return read_slow(index, offset, out);
    const auto take = static_cast<size_t>(std::min<uint64_t>(out.size(), padded_chunk_size(c.size) - within));
    const auto data = static_cast<size_t>(within < c.size ? std::min<uint64_t>(take, c.size - within) : 0);
    if (data > 0) FERRY_TRY(file_->read(offset, out.first(data)));
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(data), out.begin() + static_cast<std::ptrdiff_t>(take),
              std::byte{0});
    count_hit();
    offset += take;
    out = out.subspan(take);
    ++index;
  }
  return {};
}

Status CachedBlobSource::read_slow(uint64_t index, uint64_t offset, std::span<std::byte> out) const {
  // The chunks the rest of the read covers; the device's chunks are contiguous (padded to 4 KiB).
  const uint64_t end = offset + out.size();
  uint64_t last = index;
  while (last + 1 < chunks_.size() && chunks_[last + 1].device_offset < end) ++last;
  std::vector<uint64_t> missing;
  for (uint64_t i = index; i <= last; ++i) {
    if (!check_present(i)) missing.push_back(i);
  }
  if (!missing.empty()) readahead(missing, last);
  // A reader's fetch goes first: a prefetch of this cache waits while it runs.
  std::optional<DemandGate::Demand> demand;
  if (!missing.empty() && options_.gate != nullptr) demand.emplace(options_.gate->demand());
  const Flights flights = fetch(missing);
  demand.reset();
  for (const auto& [i, flight] : flights) {
    // Chunks read ahead may fail on their own: only the reader's range decides its answer.
    if (i <= last && !flight->status.ok()) return flight->status;
  }
  auto flight_of = [&](uint64_t i) -> const Flight* {
    for (const auto& [j, f] : flights)
      if (j == i) return f.get();
    return nullptr;
  };
  for (uint64_t i = index; !out.empty(); ++i) {
    if (i >= chunks_.size()) return no_chunk_error(name_, offset);
    const erofs::ChunkInfo& c = chunks_[i];
    if (offset < c.device_offset || offset - c.device_offset >= padded_chunk_size(c.size)) {
      return no_chunk_error(name_, offset);
    }
    const uint64_t within = offset - c.device_offset;
    const auto take = static_cast<size_t>(std::min<uint64_t>(out.size(), padded_chunk_size(c.size) - within));
    const auto data = static_cast<size_t>(within < c.size ? std::min<uint64_t>(take, c.size - within) : 0);
    if (const Flight* f = flight_of(i); f != nullptr) {
      misses_.fetch_add(1, std::memory_order_relaxed);
      if (data > 0) std::memcpy(out.data(), f->bytes.data() + within, data);
    } else {
      count_hit();
      if (data > 0) FERRY_TRY(file_->read(offset, out.first(data)));
    }
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(data), out.begin() + static_cast<std::ptrdiff_t>(take),
              std::byte{0});
    offset += take;
    out = out.subspan(take);
  }
  return {};
}

void CachedBlobSource::readahead(std::vector<uint64_t>& missing, uint64_t last) const {
  constexpr uint64_t kFirstWindow = 64 << 10;
  const bool sequential = missing.front() == next_miss_.load(std::memory_order_relaxed);
  const uint64_t window =
      sequential ? std::min<uint64_t>(std::max(kFirstWindow, ahead_bytes_.load(std::memory_order_relaxed) * 2),
                                      options_.merge_limit)
                 : 0;
  uint64_t bytes = 0;
  uint64_t j = last + 1;
  // Only chunks missing by the map and contiguous with the range (one request): the first one
  // present ends the readahead.
  for (; j < chunks_.size() && bytes + chunks_[j].stored_size <= window; ++j) {
    if (state_[j].load(std::memory_order_acquire) == kVerified) break;
    auto record = file_->record(j);
    if (!record.ok() || record->present) break;
    missing.push_back(j);
    bytes += chunks_[j].stored_size;
  }
  ahead_bytes_.store(sequential ? window : 0, std::memory_order_relaxed);
  next_miss_.store(j, std::memory_order_relaxed);
}

bool CachedBlobSource::check_present(uint64_t index) const {
  const uint8_t state = state_[index].load(std::memory_order_acquire);
  if (state == kVerified) return true;
  if (state == kDamaged) return false;
  auto record = file_->record(index);
  if (!record.ok() || !record->present) return false;
  // Present on disk: trusted only once its bytes are the table's (the record may have reached
  // the disk without them, or they may have rotted since).
  const erofs::ChunkInfo& c = chunks_[index];
  std::span<std::byte> bytes = check_scratch(c.size);
  if (file_->read(c.device_offset, bytes).ok() && sha256(bytes) == c.digest) {
    state_[index].store(kVerified, std::memory_order_release);
    return true;
  }
  uint8_t expected = kUnknown;
  if (state_[index].compare_exchange_strong(expected, kDamaged, std::memory_order_acq_rel)) {
    corrupt_refetched_.fetch_add(1, std::memory_order_relaxed);
    present_.fetch_sub(1, std::memory_order_relaxed);
  }
  return false;
}

CachedBlobSource::Flights CachedBlobSource::fetch(const std::vector<uint64_t>& missing) const {
  Flights all;
  if (missing.empty()) return all;
  Flights mine;
  {
    std::lock_guard lock(flights_mu_);
    for (uint64_t i : missing) {
      // Fetched by another reader since we looked: its flight is gone, the chunk is on disk.
      if (state_[i].load(std::memory_order_acquire) == kVerified) continue;
      auto [it, inserted] = flights_.try_emplace(i);
      if (inserted) {
        it->second = std::make_shared<Flight>();
        mine.emplace_back(i, it->second);
      }
      all.emplace_back(i, it->second);
    }
  }
  // Our flights first, in runs of adjacent chunks with contiguous stored bytes; only then wait
  // for others' (an owner never waits before its own flights are done: no reader waits in a cycle).
  for (size_t a = 0; a < mine.size();) {
    size_t b = a + 1;
    uint64_t bytes = chunks_[mine[a].first].stored_size;
    while (b < mine.size()) {
      const erofs::ChunkInfo& prev = chunks_[mine[b - 1].first];
      const erofs::ChunkInfo& next = chunks_[mine[b].first];
      if (mine[b].first != mine[b - 1].first + 1 || next.blob_offset != prev.blob_offset + prev.stored_size ||
          bytes + next.stored_size > options_.merge_limit) {
        break;
      }
      bytes += next.stored_size;
      ++b;
    }
    fetch_run(std::span(mine).subspan(a, b - a));
    a = b;
  }
  for (const auto& [i, flight] : all) {
    bool owned = false;
    for (const auto& m : mine) owned = owned || m.first == i;
    if (owned) continue;
    waiting_.fetch_add(1, std::memory_order_relaxed);
    (void)flight->wait();
    waiting_.fetch_sub(1, std::memory_order_relaxed);
  }
  return all;
}

void CachedBlobSource::fetch_run(std::span<const std::pair<uint64_t, std::shared_ptr<Flight>>> run) const {
  const uint64_t first = run.front().first;
  const auto chunks = chunks_.subspan(first, run.size());
  uint64_t stored_bytes = 0;
  for (const erofs::ChunkInfo& c : chunks) stored_bytes += c.stored_size;
  size_t done = 0;
  try {
    std::vector<std::byte> stored(stored_bytes);
    fetch_requests_.fetch_add(1, std::memory_order_relaxed);
    Status st = stored_->read_stored_run(blob_.first_chunk + first, chunks, stored);
    if (!st.ok()) {
      const std::string what =
          run.size() == 1 ? "fetching its stored bytes: "
                          : "fetching its stored bytes (with chunks " + std::to_string(blob_.first_chunk + first) +
                                ".." + std::to_string(blob_.first_chunk + first + run.size() - 1) +
                                " in one request): ";
      for (; done < run.size(); ++done) {
        finish(run[done].first, *run[done].second, chunk_error(run[done].first, what + st.error().message));
      }
      return;
    }
    bytes_fetched_.fetch_add(stored_bytes, std::memory_order_relaxed);
    std::span<const std::byte> rest(stored);
    for (; done < run.size(); ++done) {
      const uint64_t i = run[done].first;
      const erofs::ChunkInfo& c = chunks_[i];
      Flight& f = *run[done].second;
      const auto in = rest.first(c.stored_size);
      rest = rest.subspan(c.stored_size);
      f.bytes.resize(c.size);
      Status dec = decompress_chunk(c.compression, in, f.bytes);
      if (!dec.ok()) {
        finish(i, f, chunk_error(i, dec.error().message));
      } else if (sha256(f.bytes) != c.digest) {
        finish(i, f, chunk_error(i, "the sha256 of its fetched bytes is not the chunk table's (damaged in "
                                    "transit or at the source)"));
      } else {
        finish(i, f, {});
      }
    }
  } catch (const std::bad_alloc&) {
    for (; done < run.size(); ++done) {
      finish(run[done].first, *run[done].second, chunk_error(run[done].first, "out of memory fetching it"));
    }
  }
}

void CachedBlobSource::finish(uint64_t index, Flight& flight, Status status) const {
  if (status.ok()) {
    const erofs::ChunkInfo& c = chunks_[index];
    Status written = file_->write_chunk(index, c.device_offset, flight.bytes);
    if (written.ok()) {
      present_.fetch_add(1, std::memory_order_relaxed);
      // Before the flight leaves the table: a reader that misses the flight sees the chunk.
      state_[index].store(kVerified, std::memory_order_release);
    } else if (!write_warned_.exchange(true)) {
      spdlog::warn("{}: cannot cache chunk {} ({}); serving fetched chunks without caching them", name_,
                   blob_.first_chunk + index, written.error().message);
    }
  }
  {
    std::lock_guard lock(flights_mu_);
    flights_.erase(index);
  }
  std::lock_guard lock(flight.mu);
  flight.status = std::move(status);
  flight.done = true;
  flight.cv.notify_all();
}

Status CachedBlobSource::fill(uint64_t first, uint64_t count) const {
  if (first > chunks_.size() || count > chunks_.size() - first) {
    return Error{EINVAL, name_ + ": chunks " + std::to_string(first) + "+" + std::to_string(count) +
                             " are past its " + std::to_string(chunks_.size()) + " chunks"};
  }
  // In groups of about merge_limit stored bytes: the decoded bytes of a group's flights are held
  // until the group is done, and a prefetch of a whole blob must not hold the blob in memory.
  std::vector<uint64_t> missing;
  uint64_t group_bytes = 0;
  Status result;
  auto flush = [&] {
    for (const auto& [i, flight] : fetch(missing)) {
      if (!flight->status.ok() && result.ok()) result = flight->status;
    }
    missing.clear();
    group_bytes = 0;
  };
  for (uint64_t i = first; i < first + count; ++i) {
    if (check_present(i)) continue;
    if (!missing.empty() && group_bytes + chunks_[i].stored_size > options_.merge_limit) flush();
    missing.push_back(i);
    group_bytes += chunks_[i].stored_size;
  }
  flush();
  return result;
}

}  // namespace ferry::storage
