// The prefetcher's promises with a recording target (a seam standing for a cached blob source):
// job order, piece sizes, the bandwidth limit, readers first, failures skipped, prompt stop.
#include "storage/prefetcher.h"

#include <gtest/gtest.h>

#include <mutex>
#include <vector>

#include "kit/wait.h"

namespace ferry::storage {
namespace {

using namespace std::chrono_literals;
using testkit::now_ns;
using testkit::wait_until;

class RecordingTarget final : public PrefetchTarget {
 public:
  RecordingTarget(uint64_t chunks, uint64_t chunk_bytes) : chunks_(chunks), chunk_bytes_(chunk_bytes) {}
  Status fill(uint64_t first, uint64_t count) const override {
    std::lock_guard lock(mu_);
    fills_.emplace_back(first, count);
    if (fail_first_ != UINT64_MAX && first == fail_first_) return Error{EIO, "registry unreachable"};
    return {};
  }
  [[nodiscard]] uint64_t stored_size(uint64_t) const override { return chunk_bytes_; }
  [[nodiscard]] uint64_t chunk_count() const override { return chunks_; }
  std::vector<std::pair<uint64_t, uint64_t>> fills() const {
    std::lock_guard lock(mu_);
    return fills_;
  }
  uint64_t fail_first_ = UINT64_MAX;

 private:
  uint64_t chunks_;
  uint64_t chunk_bytes_;
  mutable std::mutex mu_;
  mutable std::vector<std::pair<uint64_t, uint64_t>> fills_;
};

bool finished(const Prefetcher& p) {
  return wait_until([&] { return p.progress().finished; }, 20s);
}

TEST(Prefetcher, FillsJobsInOrderInPiecesOfTheConfiguredSize) {
  auto a = std::make_shared<RecordingTarget>(10, 300 << 10);  // 300 KiB chunks: 3 per 1 MiB piece
  auto b = std::make_shared<RecordingTarget>(2, 300 << 10);
  Prefetcher p({{a, 6, 2}, {b, 0, 2}, {a, 0, 10}}, {.threads = 1}, std::make_shared<DemandGate>());
  ASSERT_TRUE(finished(p));
  using F = std::vector<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ(a->fills(), (F{{6, 2}, {0, 3}, {3, 3}, {6, 3}, {9, 1}}));
  EXPECT_EQ(b->fills(), (F{{0, 2}}));
  auto progress = p.progress();
  EXPECT_EQ(progress.chunks_total, 14U);
  EXPECT_EQ(progress.chunks_done, 14U);
  EXPECT_EQ(progress.bytes_done, 14U * (300 << 10));
}

TEST(Prefetcher, AJobPastTheBlobIsCutAtItsEndAndAHugeChunkIsOnePiece) {
  auto big = std::make_shared<RecordingTarget>(3, 4 << 20);  // larger than a piece
  Prefetcher p({{big, 1, 100}}, {.threads = 1}, std::make_shared<DemandGate>());
  ASSERT_TRUE(finished(p));
  using F = std::vector<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ(big->fills(), (F{{1, 1}, {2, 1}}));
}

TEST(Prefetcher, KeepsToTheBandwidthRate) {
  auto t = std::make_shared<RecordingTarget>(16, 256 << 10);  // 4 MiB in 4 pieces
  const int64_t t0 = now_ns();
  Prefetcher p({{t, 0, 16}}, {.threads = 2, .bandwidth_rate = 8 << 20}, std::make_shared<DemandGate>());
  ASSERT_TRUE(finished(p));
  // The first piece goes at once, each further MiB waits 1/8 s: at least 3/8 s in all.
  EXPECT_GE(now_ns() - t0, 370'000'000);
  EXPECT_EQ(p.progress().chunks_done, 16U);
}

TEST(Prefetcher, WaitsWhileAReaderFetches) {
  auto gate = std::make_shared<DemandGate>();
  auto t = std::make_shared<RecordingTarget>(4, 1 << 20);
  std::optional<DemandGate::Demand> reader(gate->demand());
  Prefetcher p({{t, 0, 4}}, {.threads = 2}, gate);
  EXPECT_FALSE(wait_until([&] { return !t->fills().empty(); }, 300ms)) << "prefetch went ahead of a reader";
  reader.reset();
  ASSERT_TRUE(finished(p));
  EXPECT_EQ(t->fills().size(), 4U);
}

TEST(Prefetcher, AFailedPieceIsCountedAndTheRestGoesOn) {
  auto t = std::make_shared<RecordingTarget>(3, 1 << 20);
  t->fail_first_ = 1;
  Prefetcher p({{t, 0, 3}}, {.threads = 1}, std::make_shared<DemandGate>());
  ASSERT_TRUE(finished(p));
  auto progress = p.progress();
  EXPECT_EQ(progress.pieces_failed, 1U);
  EXPECT_EQ(progress.chunks_done, 2U);
  EXPECT_EQ(progress.last_error, "registry unreachable");
}

TEST(Prefetcher, StopsAtOnceWhileWaitingForAReaderOrTheBudget) {
  auto gate = std::make_shared<DemandGate>();
  auto t = std::make_shared<RecordingTarget>(100, 1 << 20);
  {
    auto reader = gate->demand();
    auto p = std::make_unique<Prefetcher>(std::vector<PrefetchJob>{{t, 0, 100}}, PrefetchOptions{.threads = 2}, gate);
    const int64_t t0 = now_ns();
    p.reset();
    EXPECT_LT(now_ns() - t0, 1'000'000'000);
  }
  auto p = std::make_unique<Prefetcher>(std::vector<PrefetchJob>{{t, 0, 100}},
                                        PrefetchOptions{.threads = 1, .bandwidth_rate = 1 << 20}, gate);
  ASSERT_TRUE(wait_until([&] { return !t->fills().empty(); }, 10s));
  const int64_t t0 = now_ns();
  p.reset();  // the second piece waits a whole second for its budget
  EXPECT_LT(now_ns() - t0, 500'000'000);
  EXPECT_LT(t->fills().size(), 100U);
}

}  // namespace
}  // namespace ferry::storage
