#include "manager/metrics.h"
#include "manager/storage_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ctime>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

namespace ferry::manager {
namespace {

using ::testing::HasSubstr;

struct Exposition {
  std::map<std::string, std::string> samples;  // "name{labels}" -> value text
  std::map<std::string, std::string> types;    // metric family -> type
  std::vector<std::string> order;              // sample keys in output order
};

// A small reader of the text format: enough to check what a Prometheus server would see.
Exposition parse_back(const std::string& text) {
  Exposition e;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    EXPECT_FALSE(line.empty()) << "blank line in exposition";
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream l(line.substr(7));
      std::string name, type;
      l >> name >> type;
      e.types[name] = type;
      continue;
    }
    if (line.rfind("# HELP ", 0) == 0) continue;
    EXPECT_NE(line[0], '#') << line;
    auto space = line.rfind(' ');
    EXPECT_NE(space, std::string::npos) << line;
    std::string key = line.substr(0, space);
    EXPECT_EQ(e.samples.count(key), 0u) << "duplicate sample " << key;
    e.samples[key] = line.substr(space + 1);
    e.order.push_back(key);
  }
  EXPECT_EQ(text.back(), '\n');
  return e;
}

double num(const Exposition& e, const std::string& key) {
  auto it = e.samples.find(key);
  if (it == e.samples.end()) {
    ADD_FAILURE() << "no sample " << key;
    return -1;
  }
  return std::stod(it->second);
}

const char* kLes[] = {"1",   "2",   "5",    "10",   "20",   "50",    "100",
                      "200", "500", "1000", "2000", "5000", "10000", "+Inf"};

TEST(ManagerMetrics, EmptyRenderHasEverySeries) {
  ManagerMetrics m;
  Exposition e = parse_back(m.render({}));
  EXPECT_EQ(e.types["ferry_daemons"], "gauge");
  EXPECT_EQ(e.types["ferry_events_total"], "counter");
  EXPECT_EQ(e.types["ferry_recovery_duration_ms"], "histogram");
  EXPECT_EQ(e.types["ferry_manager_start_time_seconds"], "gauge");
  for (const char* kind :
       {"start", "death", "failover", "restart", "upgrade", "rollback", "failure", "reattach", "stop"}) {
    EXPECT_EQ(num(e, std::string("ferry_events_total{event=\"") + kind + "\"}"), 0) << kind;
  }
  for (const char* kind : {"failover", "restart", "upgrade", "rollback"}) {
    const std::string ev = std::string("event=\"") + kind + "\"";
    for (const char* le : kLes) {
      EXPECT_EQ(num(e, "ferry_recovery_duration_ms_bucket{" + ev + ",le=\"" + le + "\"}"), 0);
    }
    EXPECT_EQ(num(e, "ferry_recovery_duration_ms_sum{" + ev + "}"), 0);
    EXPECT_EQ(num(e, "ferry_recovery_duration_ms_count{" + ev + "}"), 0);
  }
  EXPECT_EQ(e.samples.count("ferry_recovery_duration_ms_count{event=\"death\"}"), 0u);
  double start = num(e, "ferry_manager_start_time_seconds");
  double now = static_cast<double>(::time(nullptr));
  EXPECT_LE(start, now);
  EXPECT_GT(start, now - 60);
}

TEST(ManagerMetrics, DaemonsByState) {
  ManagerMetrics m;
  std::string text = m.render({{"RUNNING", 3}, {"DEAD", 1}, {"weird\"state", 0}});
  Exposition e = parse_back(text);
  EXPECT_EQ(num(e, "ferry_daemons{state=\"RUNNING\"}"), 3);
  EXPECT_EQ(num(e, "ferry_daemons{state=\"DEAD\"}"), 1);
  EXPECT_THAT(text, HasSubstr("ferry_daemons{state=\"weird\\\"state\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE ferry_daemons gauge\nferry_daemons{state=\"DEAD\"} 1\n"));
}

TEST(ManagerMetrics, CountsEvents) {
  ManagerMetrics m;
  m.count(EventKind::kFailover);
  m.count(EventKind::kFailover);
  m.count(EventKind::kDeath);
  m.count(EventKind::kStop);
  EXPECT_EQ(m.total(EventKind::kFailover), 2u);
  EXPECT_EQ(m.total(EventKind::kDeath), 1u);
  EXPECT_EQ(m.total(EventKind::kRestart), 0u);
  Exposition e = parse_back(m.render({}));
  EXPECT_EQ(num(e, "ferry_events_total{event=\"failover\"}"), 2);
  EXPECT_EQ(num(e, "ferry_events_total{event=\"death\"}"), 1);
  EXPECT_EQ(num(e, "ferry_events_total{event=\"stop\"}"), 1);
  EXPECT_EQ(num(e, "ferry_events_total{event=\"restart\"}"), 0);
}

TEST(ManagerMetrics, HistogramBucketsAreCumulative) {
  ManagerMetrics m;
  // le is inclusive: 1 falls in le="1", 1.01 in le="2", 10001 only in +Inf.
  const std::vector<double> values = {0.2, 1, 1.01, 3.9, 3.9, 49, 50, 700, 10000, 10001, 99999};
  for (double v : values) m.observe(EventKind::kFailover, v);
  m.observe(EventKind::kUpgrade, 250);
  m.observe(EventKind::kDeath, 5);                                            // not timed: ignored
  m.observe(EventKind::kRestart, -3);                                         // a clock step: counted as 0
  m.observe(EventKind::kRollback, std::numeric_limits<double>::quiet_NaN());  // ignored
  Exposition e = parse_back(m.render({}));
  const double bounds[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};
  double prev = 0;
  double sum = 0;
  for (double v : values) sum += v;
  for (size_t b = 0; b < 14; ++b) {
    size_t want = 0;
    for (double v : values) {
      if (b == 13 || v <= bounds[b]) ++want;
    }
    double got =
        num(e, std::string("ferry_recovery_duration_ms_bucket{event=\"failover\",le=\"") + kLes[b] + "\"}");
    EXPECT_EQ(got, static_cast<double>(want)) << "le=" << kLes[b];
    EXPECT_GE(got, prev);
    prev = got;
  }
  EXPECT_EQ(num(e, "ferry_recovery_duration_ms_count{event=\"failover\"}"),
            static_cast<double>(values.size()));
  EXPECT_DOUBLE_EQ(num(e, "ferry_recovery_duration_ms_sum{event=\"failover\"}"), sum);
  EXPECT_EQ(num(e, "ferry_recovery_duration_ms_bucket{event=\"upgrade\",le=\"200\"}"), 0);
  EXPECT_EQ(num(e, "ferry_recovery_duration_ms_bucket{event=\"upgrade\",le=\"500\"}"), 1);
  EXPECT_EQ(num(e, "ferry_recovery_duration_ms_sum{event=\"upgrade\"}"), 250);
  EXPECT_EQ(num(e, "ferry_recovery_duration_ms_bucket{event=\"restart\",le=\"1\"}"), 1);
  EXPECT_EQ(num(e, "ferry_recovery_duration_ms_sum{event=\"restart\"}"), 0);
  EXPECT_EQ(num(e, "ferry_recovery_duration_ms_count{event=\"rollback\"}"), 0);
  // Within one histogram: the buckets in increasing le, then _sum, then _count.
  std::vector<std::string> failover_keys;
  for (const auto& k : e.order) {
    if (k.find("event=\"failover\"") != std::string::npos && k.rfind("ferry_recovery", 0) == 0) {
      failover_keys.push_back(k);
    }
  }
  ASSERT_EQ(failover_keys.size(), 16u);
  EXPECT_THAT(failover_keys[0], HasSubstr("le=\"1\""));
  EXPECT_THAT(failover_keys[13], HasSubstr("le=\"+Inf\""));
  EXPECT_EQ(failover_keys[14], "ferry_recovery_duration_ms_sum{event=\"failover\"}");
  EXPECT_EQ(failover_keys[15], "ferry_recovery_duration_ms_count{event=\"failover\"}");
}

TEST(ManagerMetrics, ConcurrentUpdates) {
  ManagerMetrics m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        m.count(EventKind::kFailover);
        m.observe(EventKind::kFailover, 3);
        if (i % 1000 == 0) (void)m.render({});
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(m.total(EventKind::kFailover), 40000u);
  Exposition e = parse_back(m.render({}));
  EXPECT_EQ(num(e, "ferry_recovery_duration_ms_count{event=\"failover\"}"), 40000);
  EXPECT_EQ(num(e, "ferry_recovery_duration_ms_bucket{event=\"failover\",le=\"5\"}"), 40000);
  EXPECT_EQ(num(e, "ferry_recovery_duration_ms_bucket{event=\"failover\",le=\"2\"}"), 0);
  EXPECT_EQ(num(e, "ferry_recovery_duration_ms_sum{event=\"failover\"}"), 120000);
}

// What the daemons report of their registry fetches, caches and prefetches becomes one series per
// daemon and blob, each family printed once with its type; broken input adds nothing.
TEST(StorageMetrics, DaemonsFetchesCachesAndPrefetchesAsSeries) {
  const std::string d1 = R"({"requests": 9,
    "remote_blobs": {"sha256:aa": {"source": "registry r", "requests": 3, "bytes_fetched": 9000, "failures": 1,
                                   "latency_us_total": 2500, "latency_us_max": 900,
                                   "latency_histogram": [{"le_ms": 1, "count": 1}, {"le_ms": 5, "count": 1},
                                                         {"le_ms": "+Inf", "count": 0}]}},
    "blob_caches": {"/c/aa.blob.data": {"hits": 7, "misses": 2, "bytes_fetched": 9000, "fetch_requests": 3,
                                        "chunks_present": 2, "chunks_total": 4, "corrupt_refetched": 0}},
    "prefetch": [{"chunks_total": 4, "chunks_done": 2, "bytes_done": 100, "pieces_failed": 1, "finished": false,
                  "last_error": "x"}]})";
  const std::string d2 = R"({"remote_blobs": {"sha256:bb": {"requests": 1, "bytes_fetched": "not a number"}}})";
  const std::string text = render_storage_metrics({{"d1", d1}, {"d\"2", d2}, {"d3", "not json"}});
  const Exposition e = parse_back(text);
  EXPECT_EQ(e.samples.at(R"(ferry_blob_fetch_requests_total{daemon="d1",blob="sha256:aa"})"), "3");
  EXPECT_EQ(e.samples.at(R"(ferry_blob_fetch_requests_total{daemon="d\"2",blob="sha256:bb"})"), "1");
  EXPECT_EQ(e.samples.count(R"(ferry_blob_fetched_bytes_total{daemon="d\"2",blob="sha256:bb"})"), 0U);
  EXPECT_EQ(e.samples.at(R"(ferry_blob_fetch_failures_total{daemon="d1",blob="sha256:aa"})"), "1");
  EXPECT_EQ(e.samples.at(R"(ferry_blob_fetch_latency_ms_bucket{daemon="d1",blob="sha256:aa",le="5"})"), "2");
  EXPECT_EQ(e.samples.at(R"(ferry_blob_fetch_latency_ms_bucket{daemon="d1",blob="sha256:aa",le="+Inf"})"), "2");
  EXPECT_EQ(e.samples.at(R"(ferry_blob_fetch_latency_ms_sum{daemon="d1",blob="sha256:aa"})"), "2.5");
  EXPECT_EQ(e.samples.at(R"(ferry_blob_fetch_latency_ms_count{daemon="d1",blob="sha256:aa"})"), "2");
  EXPECT_EQ(e.samples.at(R"(ferry_blob_cache_hits_total{daemon="d1",file="/c/aa.blob.data"})"), "7");
  EXPECT_EQ(e.samples.at(R"(ferry_blob_cache_chunks_present{daemon="d1",file="/c/aa.blob.data"})"), "2");
  EXPECT_EQ(e.samples.at(R"(ferry_prefetch_chunks_done{daemon="d1",prefetch="0"})"), "2");
  EXPECT_EQ(e.types.at("ferry_blob_fetch_requests_total"), "counter");
  EXPECT_EQ(e.types.at("ferry_blob_cache_chunks"), "gauge");
  EXPECT_EQ(e.types.at("ferry_blob_fetch_latency_ms"), "histogram");
  // One header per family, however many daemons have samples in it.
  size_t headers = 0;
  for (size_t at = 0; (at = text.find("# TYPE ferry_blob_fetch_requests_total ", at)) != std::string::npos; ++at) ++headers;
  EXPECT_EQ(headers, 1U) << text;
  EXPECT_EQ(render_storage_metrics({}), "");
  EXPECT_EQ(render_storage_metrics({{"d1", R"({"requests": 1})"}}), "");
}

}  // namespace
}  // namespace ferry::manager
