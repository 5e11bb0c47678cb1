// DaemonMetrics as the FUSE server feeds it: per-worker counters summed on read, requests
// attributed to their image's slot, the in-flight table, sampled latency, error rules, and
// opcode names from the server's table.
#include "daemon/metrics.h"

#include <gtest/gtest.h>
#include <linux/fuse.h>

#include <atomic>
#include <thread>
#include <vector>

#include "imagefs/node_id.h"

namespace ferry::daemon {
namespace {

uint64_t node(uint32_t slot, uint64_t nid) {
  return *imagefs::encode_node({slot, nid});
}

void request(DaemonMetrics& m, unsigned worker, uint32_t opcode, uint64_t nodeid, int error = 0, uint64_t bytes = 0) {
  static std::atomic<uint64_t> unique{1};
  m.on_begin(worker, opcode, nodeid, unique.fetch_add(1) + 1);
  m.on_end(worker, opcode, error, bytes);
}

uint64_t histogram_total(const nlohmann::json& j) {
  uint64_t n = 0;
  for (const auto& b : j["latency_histogram"]) n += b["count"].get<uint64_t>();
  return n;
}

TEST(DaemonMetrics, CountsOfEveryWorkerAreSummedAndAttributedToTheirImage) {
  DaemonMetrics m(4);
  m.add_image(1);
  m.add_image(2);
  for (unsigned w = 0; w < 4; ++w) {
    request(m, w, FUSE_READ, node(1, 40), 0, 4096);
    request(m, w, FUSE_READ, node(2, 40), 0, 100);
    request(m, w, FUSE_LOOKUP, node(2, 40), ENOENT);  // not an error: the name is absent
    request(m, w, FUSE_GETATTR, node(2, 40), EIO);    // an error
  }
  request(m, 0, FUSE_STATFS, node(9, 1));  // a slot without counters counts in the totals only
  auto t = m.totals();
  EXPECT_EQ(t["requests"], 17U);
  EXPECT_EQ(t["bytes_read"], 4U * (4096 + 100));
  EXPECT_EQ(t["errors"], 4U);
  EXPECT_EQ(t["requests_by_opcode"]["read"], 8U);
  EXPECT_EQ(t["requests_by_opcode"]["lookup"], 4U);
  EXPECT_EQ(t["requests_by_opcode"]["statfs"], 1U);
  auto one = m.image(1);
  EXPECT_EQ(one["requests"], 4U);
  EXPECT_EQ(one["bytes_read"], 4U * 4096);
  EXPECT_EQ(one["errors"], 0U);
  auto two = m.image(2);
  EXPECT_EQ(two["requests"], 12U);
  EXPECT_EQ(two["errors"], 4U);
  EXPECT_TRUE(m.image(9).is_null());
  m.remove_image(2);
  EXPECT_TRUE(m.image(2).is_null());
  request(m, 1, FUSE_READ, node(2, 40), 0, 1);  // after removal: totals only
  EXPECT_EQ(m.totals()["requests"], 18U);
}

TEST(DaemonMetrics, TheRootNodeCountsForTheRootSlotAndUnknownOpcodesHaveNumbers) {
  DaemonMetrics m(1);
  m.add_image(3);
  m.set_root_slot(3);
  request(m, 0, FUSE_GETATTR, imagefs::kRootNodeId);
  request(m, 0, 63, imagefs::kRootNodeId, ENOSYS);
  request(m, 0, 200, imagefs::kRootNodeId, ENOSYS);
  auto root = m.image(3);
  EXPECT_EQ(root["requests"], 3U);
  EXPECT_EQ(root["requests_by_opcode"]["getattr"], 1U);
  EXPECT_EQ(root["requests_by_opcode"]["opcode_63"], 1U);
  EXPECT_EQ(root["errors"], 0U) << "ENOSYS is not an error";
}

TEST(DaemonMetrics, LatencyIsSampledEverySixtyFourthRequestOfEachWorker) {
  DaemonMetrics m(2);
  for (int i = 0; i < 130; ++i) request(m, 0, FUSE_READ, node(1, 1));
  for (int i = 0; i < 64; ++i) request(m, 1, FUSE_READ, node(1, 1));
  auto t = m.totals();
  EXPECT_EQ(t["latency_sample_every"], DaemonMetrics::kLatencySampleEvery);
  // Worker 0: requests 0, 64, 128; worker 1: request 0.
  EXPECT_EQ(histogram_total(t), 4U);
}

TEST(DaemonMetrics, InflightListsWhatTheWorkersHoldNow) {
  DaemonMetrics m(3);
  EXPECT_TRUE(m.inflight().empty());
  m.on_begin(0, FUSE_READ, node(1, 7), 1001);
  m.on_begin(2, FUSE_LOOKUP, node(1, 8), 1002);
  auto list = m.inflight();
  ASSERT_EQ(list.size(), 2U);
  EXPECT_EQ(list[0]["unique"], 1001U);
  EXPECT_EQ(list[0]["opcode"], static_cast<unsigned>(FUSE_READ));
  EXPECT_EQ(list[0]["inode"], node(1, 7));
  EXPECT_GT(list[0]["timestamp_secs"].get<int64_t>(), 1600000000);
  EXPECT_EQ(list[1]["unique"], 1002U);
  m.on_end(0, FUSE_READ, 0, 10);
  list = m.inflight();
  ASSERT_EQ(list.size(), 1U);
  EXPECT_EQ(list[0]["unique"], 1002U);
  m.on_end(2, FUSE_LOOKUP, 0, 0);
  EXPECT_TRUE(m.inflight().empty());
}

// Workers count while images come and go and readers snapshot: every request is counted once.
TEST(DaemonMetrics, ConcurrentWorkersLoseNoCount) {
  constexpr unsigned kWorkers = 4;
  constexpr int kEach = 20000;
  DaemonMetrics m(kWorkers);
  m.add_image(1);
  std::vector<std::thread> threads;
  for (unsigned w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kEach; ++i) request(m, w, FUSE_READ, node(1 + (i % 2), 5), 0, 1);
    });
  }
  for (uint32_t slot = 2; slot < 200; ++slot) {
    m.add_image(slot);
    (void)m.totals();
    if (slot > 2) m.remove_image(slot);
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(m.totals()["requests"], uint64_t{kWorkers} * kEach);
  EXPECT_EQ(m.image(1)["requests"], uint64_t{kWorkers} * kEach / 2);
}

}  // namespace
}  // namespace ferry::daemon
