// Waiting for a condition under a deadline: the one way tests and benchmarks synchronise with
// processes and mounts (never a bare sleep).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace ferry::testkit {

using namespace std::chrono_literals;

// Polls `cond` until it holds (true) or `timeout` passes (false). The pause between polls starts
// at `first` and doubles up to `most`, so a condition that holds soon is seen soon and a long wait
// does not spin. `cond` runs on the calling thread.
bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout,
                std::chrono::microseconds first = 200us, std::chrono::microseconds most = 20ms);

// Nanoseconds on the steady clock (the clock of every deadline and completion time of the kit).
int64_t now_ns();

}  // namespace ferry::testkit
