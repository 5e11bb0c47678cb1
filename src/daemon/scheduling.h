// Returning to serving priority: a successor daemon (hot standby, upgrade) may be started at
// nice 19 so that its start-up yields the CPU to the daemon that still serves and to its
// readers. Whoever starts it so puts FERRY_SERVING_NICE=<n> in its environment. It stays at 19
// while it waits in INIT, takes a state over and stands by; once it starts serving it must
// compete normally, so every thread of the process (workers created in advance included: nice
// is per thread on Linux) goes to nice n.
//
// Thread-safety: may be called from any thread; acts once per process; a no-op without
// FERRY_SERVING_NICE.
// Failures are logged, never fatal (the daemon still serves, at a lower priority).
#pragma once

namespace ferry::daemon {

void restore_serving_priority();

// A daemon that has handed its connection over and is leaving (PUT exit): every thread to
// nice 19, so that tearing the process down (unmapping images and memory, closing fds) yields
// the CPUs at once to the successor's workers and their readers, which share them on a small
// host. Whatever FERRY_SERVING_NICE says; logged failures only.
inline constexpr int kLeavingNice = 19;
void yield_cpu_for_exit();

// The same for the calling thread only: a thread that waits for the moment to serve (a standby
// watching its predecessor) must not be slowed by the idle priority when that moment comes.
void restore_serving_priority_of_this_thread();

}  // namespace ferry::daemon
