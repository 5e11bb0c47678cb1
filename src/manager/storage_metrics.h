// The storage side of the daemons, as Prometheus text for the manager's GET /metrics: what each
// daemon's GET /api/v1/metrics reports of its registry fetches (`remote_blobs`), blob caches
// (`blob_caches`) and prefetches (`prefetch`), one series per daemon and blob:
//
//   ferry_blob_fetch_requests_total{daemon="ID",blob="sha256:.."}   counter
//   ferry_blob_fetched_bytes_total / ferry_blob_fetch_failures_total counter
//   ferry_blob_fetch_latency_ms{daemon,blob} histogram (_bucket{le} / _sum / _count: the daemon's buckets)
//   ferry_blob_cache_hits_total{daemon,file} / _misses_total / _fetched_bytes_total /
//   _corrupt_refetched_total                                          counter
//   ferry_blob_cache_chunks_present{daemon,file} / ferry_blob_cache_chunks{daemon,file}  gauge
//   ferry_prefetch_chunks_done{daemon,prefetch="N"} / ferry_prefetch_chunks{...} gauge,
//   ferry_prefetch_failed_pieces_total{...}                           counter
//
// Input is each daemon's JSON as it answered (our own daemon, but parsed defensively: a field
// that is missing or of another type is left out, a document that is not JSON adds nothing).
// A family with no sample is not printed. Pure function, thread-safe.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace ferry::manager {

// `daemons`: (daemon id, the body of its GET /api/v1/metrics), in the order to print.
std::string render_storage_metrics(const std::vector<std::pair<std::string, std::string>>& daemons);

}  // namespace ferry::manager
