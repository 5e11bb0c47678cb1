// bench_support: what takeover_bench and manager_bench share beyond the test kit (tests/kit:
// processes, temp dirs, mounts, sample images, the reader process and its gaps), so that both
// measure, clean up and report the same way.
//
//   clock        ns_of / to_ms on the steady clock (testkit::now_ns), loadavg() for the report.
//   interruption g_signal, set by SignalWatcher from SIGINT/SIGTERM/SIGHUP; check_interrupt(),
//                sleep_ns(), poll_until() and interrupted() let every wait unwind on it.
//   statistics   summarize() (n/min/median/p99/max as JSON) and column() for per-round structs.
//   idle         IdleControl: the rounds in which nothing happens, the benchmarks' noise floor.
//   main         run_benchmark(): the common body of main() once the options are parsed: the
//                rounds, the report, the table (bench/support/table.h).
//
// Everything here is for single benchmark processes run by hand or by bench/*.sh: not
// thread-safe unless said (g_signal, check_interrupt and the clock helpers are). Messages on
// stderr are prefixed with program_name() (set it first thing in main). Errors are values.
#pragma once

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "kit/process.h"
#include "kit/readers.h"
#include "kit/sample_image.h"
#include "kit/temp_dir.h"
#include "kit/wait.h"
#include "support/table.h"

namespace ferry::bench {

using namespace std::chrono_literals;
using namespace ferry::testkit;  // NOLINT(google-build-using-namespace): the kit is the benchmarks'
                                 // vocabulary

constexpr int64_t kNsPerMs = 1'000'000;

// ---- program name (prefix of stderr messages) -------------------------------------------------

void set_program_name(const char* name);
const char* program_name();

// ---- clock -----------------------------------------------------------------------------------

int64_t ns_of(std::chrono::nanoseconds d);
double to_ms(int64_t ns);
std::string loadavg();  // "1m 5m 15m" from /proc/loadavg

// ---- interruption ----------------------------------------------------------------------------

// The first SIGINT/SIGTERM/SIGHUP received; every wait checks it and unwinds.
extern std::atomic<int> g_signal;

Status check_interrupt();
// True once a signal arrived (a give_up for the kit's waits).
bool interrupted();
// Sleeps, but returns early (with EINTR) when a signal arrived.
Status sleep_ns(int64_t ns);
// Polls `done` every `every` until it holds (true), the deadline passes or a signal arrives.
bool poll_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                std::chrono::microseconds every = 1ms);

// Blocks the termination signals in every thread (it must be created before any other thread)
// and turns them into g_signal on a thread of its own, so that cleanup runs on the main thread
// through ordinary destructors.
class SignalWatcher {
 public:
  SignalWatcher();
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  sigset_t set_{};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// ---- children ----------------------------------------------------------------------------------

// How the benchmarks start their children (testkit::Process::spawn): in a process group of their
// own (a Ctrl-C at the terminal reaches only the benchmark, which then stops them itself), at
// `nice`, output appended to `log`, no fd of ours inherited.
SpawnOptions child_options(const std::string& log, int nice = 0);
// The last line of a file (a `--version` output), trimmed.
std::string last_line_of(const std::string& path);

// ---- statistics ------------------------------------------------------------------------------

// min / median / p99 (nearest rank: with fewer than 100 samples it is the maximum) / max.
nlohmann::json summarize(std::vector<double> v);

// One field of every round, as doubles for summarize().
template <typename Rounds, typename Field>
std::vector<double> column(const Rounds& rounds, Field field) {
  std::vector<double> v;
  for (const auto& r : rounds) v.push_back(static_cast<double>(r.*field));
  return v;
}

// ---- rounds and the idle control -------------------------------------------------------------

// One kind of round of a benchmark (crash, standby, upgrade, ...): run when enabled.
struct RoundKind {
  bool enabled = false;
  std::function<Status()> run;
};

// The rounds: `rounds` times, every enabled kind in order, then `idle` (the control).
Status run_rounds(int rounds, const std::vector<RoundKind>& kinds, const std::function<Status()>& idle);

// The idle control both benchmarks measure: after each round, a window of `window_ms` in which
// nothing happens; its longest gap is the machine's own noise. After an upgrade round it also
// measures, from `offset_ms` into that window, the longest gap in a window as long as that
// round's hand-over: what the hand-over figure would be if the switch cost nothing.
class IdleControl {
 public:
  IdleControl(int window_ms, int offset_ms) : window_ms_(window_ms), offset_ms_(offset_ms) {}
  // One idle window on `reader`; `handover_ms` is the last upgrade's hand-over window (NaN: none).
  Status round(ReaderProcess& reader, double handover_ms);
  // {"max_gap_ms": summary, "window_ms", "rounds", ["handover_length_max_gap_ms", "handover_length_rounds"]}
  [[nodiscard]] nlohmann::json report() const;

 private:
  int window_ms_;
  int offset_ms_;
  std::vector<double> idle_;
  std::vector<double> handover_;
};

// ---- main ------------------------------------------------------------------------------------

// The common body of a benchmark's main() once its options are parsed: forks the reader process
// (first: it needs a single-threaded process), starts the SignalWatcher, then runs setup / run /
// finish on a `B(opt, reader)`, and reports: its JSON report() gains "table_md" (the summary
// table in markdown, what bench/*_report.py put in docs/benchmarks.md), and stdout gets
// title(), the same table as text (bench/support/table.h renders both) and footer(report). The
// JSON goes to `out_json` (when not empty). The bench is torn down before the signal watcher
// goes. Returns the exit status: 0, 1 on failure, 3 when measured but `!bench.clean()` (`unclean`
// says why on stderr), 128+N when interrupted by signal N.
template <typename B, typename Opt>
int run_benchmark(const Opt& opt, const std::string& out_json, const char* unclean) {
  auto reader = ReaderProcess::fork(interrupted);
  if (!reader.ok()) {
    std::fprintf(stderr, "%s: error: %s\n", program_name(), reader.error().message.c_str());
    return 1;
  }
  SignalWatcher signals;
  ::signal(SIGPIPE, SIG_IGN);
  int rc = 0;
  {
    B bench(opt, std::move(*reader));
    Status st = bench.setup();
    if (st.ok()) st = bench.run();
    if (st.ok()) st = bench.finish();
    if (!st.ok()) {
      if (g_signal.load() == 0)
        std::fprintf(stderr, "%s: error: %s\n", program_name(), st.error().message.c_str());
      rc = 1;
    } else {
      nlohmann::json report = bench.report();
      const StatsTable table = bench.table(report);
      report["table_md"] = table.markdown();
      std::printf("%s\n%s%s", bench.title().c_str(), table.text().c_str(), bench.footer(report).c_str());
      std::fflush(stdout);
      if (!out_json.empty()) {
        std::ofstream out(out_json);
        out << report.dump(2) << "\n";
        if (!out) {
          std::fprintf(stderr, "%s: error: cannot write '%s'\n", program_name(), out_json.c_str());
          rc = 1;
        }
      }
      if (rc == 0 && !bench.clean()) {
        std::fprintf(stderr, "%s: %s\n", program_name(), unclean);
        rc = 3;
      }
    }
  }
  if (int sig = g_signal.load(); sig != 0) return 128 + sig;
  return rc;
}

}  // namespace ferry::bench
