#include "manager/storage_metrics.h"

#include <charconv>
#include <map>
#include <nlohmann/json.hpp>

#include "manager/metrics.h"

namespace ferry::manager {
namespace {

using nlohmann::json;

// One metric family: its header and its samples, printed together as the format requires.
struct Family {
  std::string help;
  std::string type;
  std::vector<std::string> samples;
};

class Families {
 public:
  // A sample of family `name`; a histogram's samples are named `name` + `suffix` (_bucket...).
  void add(const std::string& name, const char* help, const char* type, const std::string& labels,
           const std::string& value, const char* suffix = "") {
    Family& f = families_[name];
    if (f.type.empty()) {
      f.help = help;
      f.type = type;
      order_.push_back(name);
    }
    f.samples.push_back(name + suffix + "{" + labels + "} " + value);
  }
  [[nodiscard]] std::string text() const {
    std::string out;
    for (const auto& name : order_) {
      const Family& f = families_.at(name);
      out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + f.type + "\n";
      for (const auto& s : f.samples) out += s + "\n";
    }
    return out;
  }

 private:
  std::map<std::string, Family> families_;
  std::vector<std::string> order_;
};

std::string label(const char* key, const std::string& value) {
  return std::string(key) + "=\"" + prometheus_label_value(value) + "\"";
}

// The unsigned integer at `key`, if it is one.
bool number(const json& obj, const char* key, uint64_t* out) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_unsigned()) return false;
  *out = it->get<uint64_t>();
  return true;
}

void counter(Families& f, const json& obj, const char* key, const std::string& name, const char* help,
             const std::string& labels, const char* type = "counter") {
  uint64_t v = 0;
  if (number(obj, key, &v)) f.add(name, help, type, labels, std::to_string(v));
}

void remote_blobs(Families& f, const std::string& daemon, const json& blobs) {
  for (const auto& [digest, b] : blobs.items()) {
    if (!b.is_object()) continue;
    const std::string labels = label("daemon", daemon) + "," + label("blob", digest);
    counter(f, b, "requests", "ferry_blob_fetch_requests_total", "Range requests made for a blob's chunks.", labels);
    counter(f, b, "bytes_fetched", "ferry_blob_fetched_bytes_total", "Stored bytes fetched of a blob.", labels);
    counter(f, b, "failures", "ferry_blob_fetch_failures_total", "Fetches of a blob that ended in EIO.", labels);
    auto hist = b.find("latency_histogram");
    if (hist == b.end() || !hist->is_array()) continue;
    const char* help = "How long a blob's successful fetches took, in milliseconds.";
    uint64_t cumulative = 0;
    for (const auto& bucket : *hist) {
      uint64_t count = 0;
      if (!bucket.is_object() || !number(bucket, "count", &count) || !bucket.contains("le_ms")) continue;
      cumulative += count;
      const json& le = bucket["le_ms"];
      const std::string le_text = le.is_number() ? le.dump() : "+Inf";
      f.add("ferry_blob_fetch_latency_ms", help, "histogram", labels + "," + label("le", le_text),
            std::to_string(cumulative), "_bucket");
    }
    uint64_t total_us = 0;
    if (number(b, "latency_us_total", &total_us)) {
      char buf[32];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, static_cast<double>(total_us) / 1000.0);
      f.add("ferry_blob_fetch_latency_ms", help, "histogram", labels,
            ec == std::errc() ? std::string(buf, end) : "0", "_sum");
    }
    f.add("ferry_blob_fetch_latency_ms", help, "histogram", labels, std::to_string(cumulative), "_count");
  }
}

void blob_caches(Families& f, const std::string& daemon, const json& caches) {
  for (const auto& [file, c] : caches.items()) {
    if (!c.is_object()) continue;
    const std::string labels = label("daemon", daemon) + "," + label("file", file);
    counter(f, c, "hits", "ferry_blob_cache_hits_total", "Chunk lookups served from a blob cache.", labels);
    counter(f, c, "misses", "ferry_blob_cache_misses_total", "Chunk lookups a blob cache had to fetch.", labels);
    counter(f, c, "bytes_fetched", "ferry_blob_cache_fetched_bytes_total", "Stored bytes fetched into a blob cache.",
            labels);
    counter(f, c, "corrupt_refetched", "ferry_blob_cache_corrupt_refetched_total",
            "Chunks found damaged in a blob cache and fetched again.", labels);
    counter(f, c, "chunks_present", "ferry_blob_cache_chunks_present", "Chunks a blob cache holds.", labels, "gauge");
    counter(f, c, "chunks_total", "ferry_blob_cache_chunks", "Chunks of the blob a cache is for.", labels, "gauge");
  }
}

void prefetches(Families& f, const std::string& daemon, const json& list) {
  size_t i = 0;
  for (const auto& p : list) {
    const std::string labels = label("daemon", daemon) + "," + label("prefetch", std::to_string(i++));
    if (!p.is_object()) continue;
    counter(f, p, "chunks_done", "ferry_prefetch_chunks_done", "Chunks an image's prefetch has filled.", labels,
            "gauge");
    counter(f, p, "chunks_total", "ferry_prefetch_chunks", "Chunks an image's prefetch fills in all.", labels, "gauge");
    counter(f, p, "pieces_failed", "ferry_prefetch_failed_pieces_total", "Prefetch pieces that failed.", labels);
  }
}

}  // namespace

std::string render_storage_metrics(const std::vector<std::pair<std::string, std::string>>& daemons) {
  Families f;
  for (const auto& [id, body] : daemons) {
    const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_object()) continue;
    if (auto it = doc.find("remote_blobs"); it != doc.end() && it->is_object()) remote_blobs(f, id, *it);
    if (auto it = doc.find("blob_caches"); it != doc.end() && it->is_object()) blob_caches(f, id, *it);
    if (auto it = doc.find("prefetch"); it != doc.end() && it->is_array()) prefetches(f, id, *it);
  }
  return f.text();
}

}  // namespace ferry::manager
