// Returning to serving priority: a successor daemon (hot standby, upgrade) may be started at
// nice 19 so that its start-up yields the CPU to the daemon that still serves and to its
// readers. Whoever starts it so puts FERRY_SERVING_NICE=<n> in its environment; once the
// successor takes the connection over it must compete normally, so every thread of the process
// (workers created in advance included: nice is per thread on Linux) goes to nice n.
//
// Thread-safety: may be called from any thread; idempotent; a no-op without FERRY_SERVING_NICE.
// Failures are logged, never fatal (the daemon still serves, at a lower priority).
#pragma once

namespace ferry::daemon {

void restore_serving_priority();

}  // namespace ferry::daemon
