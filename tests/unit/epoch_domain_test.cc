// EpochDomain: a retired object lives exactly as long as a reader that could have seen it.
#include "common/epoch_domain.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace ferry {
namespace {

// Sets `flag` when destroyed.
struct Tracked {
  explicit Tracked(std::atomic<bool>& f) : flag(f) {}
  ~Tracked() { flag.store(true); }
  Tracked(const Tracked&) = delete;
  Tracked& operator=(const Tracked&) = delete;
  std::atomic<bool>& flag;
};

TEST(EpochDomain, ARetiredObjectWaitsForTheReaderInsideAndGoesWhenItLeaves) {
  EpochDomain domain(2);
  std::atomic<bool> gone{false};
  {
    EpochDomain::Guard inside(domain, 1);
    domain.retire(std::make_shared<Tracked>(gone));
    EXPECT_FALSE(gone.load()) << "reader 1 may still use it";
    EXPECT_EQ(domain.waiting(), 1U);
    { EpochDomain::Guard other(domain, 0); }  // a reader that entered after the retire
    EXPECT_FALSE(gone.load());
  }
  EXPECT_TRUE(gone.load()) << "destroyed when the last reader that could see it left";
  EXPECT_EQ(domain.waiting(), 0U);
}

TEST(EpochDomain, WithNoReaderInsideARetiredObjectGoesAtOnce) {
  EpochDomain domain(3);
  std::atomic<bool> gone{false};
  domain.retire(std::make_shared<Tracked>(gone));
  EXPECT_TRUE(gone.load());
  EXPECT_EQ(domain.collect(), 0U);
}

TEST(EpochDomain, AReaderEnteringAfterTheRetireDoesNotHoldIt) {
  EpochDomain domain(2);
  std::atomic<bool> gone{false};
  auto late = std::make_unique<EpochDomain::Guard>(domain, 1);
  {
    EpochDomain::Guard early(domain, 0);
    domain.retire(std::make_shared<Tracked>(gone));
    late.reset();  // reader 1 leaves and enters again, after the retire
    late = std::make_unique<EpochDomain::Guard>(domain, 1);
    EXPECT_FALSE(gone.load()) << "reader 0 entered before the retire";
  }
  EXPECT_TRUE(gone.load()) << "reader 1 is inside, but entered after the retire";
  late.reset();
}

// Readers load a published pointer and check the object is alive; a writer keeps replacing it.
TEST(EpochDomain, ReadersNeverSeeADestroyedObject) {
  struct Value {
    std::atomic<bool> alive{true};
    ~Value() { alive.store(false); }
  };
  constexpr unsigned kReaders = 3;
  EpochDomain domain(kReaders);
  auto current = std::make_shared<Value>();
  std::atomic<Value*> published{current.get()};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> dead_seen{0};
  std::atomic<uint64_t> reads{0};
  std::vector<std::thread> readers;
  for (unsigned r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      while (!stop.load(std::memory_order_relaxed)) {
        EpochDomain::Guard g(domain, r);
        Value* v = published.load(std::memory_order_acquire);
        if (!v->alive.load()) dead_seen.fetch_add(1);
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  // At least 20000 replacements, and on until the readers have read a while (on a loaded host
  // they may not have been scheduled yet), within a deadline.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (int i = 0; i < 20000 || (reads.load(std::memory_order_relaxed) < 10000 &&
                                std::chrono::steady_clock::now() < deadline);
       ++i) {
    auto next = std::make_shared<Value>();
    published.store(next.get(), std::memory_order_seq_cst);
    domain.retire(std::exchange(current, std::move(next)));
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  EXPECT_EQ(dead_seen.load(), 0U);
  EXPECT_GT(reads.load(), 0U);
  EXPECT_EQ(domain.collect(), 0U) << "with every reader gone, nothing waits";
}

}  // namespace
}  // namespace ferry
