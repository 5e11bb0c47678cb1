// Counting the heap allocations of one thread, so that a test can hold a hot path to its
// promise that it never allocates. Linking ferry_testkit_alloc replaces the binary's global
// operator new/delete (malloc-backed, counting while a counter is alive on the calling thread):
// link it only into tests that count.
#pragma once

#include <cstddef>

namespace ferry::testkit {

// Counts the operator new calls of the constructing thread from construction on. Not nestable.
class AllocationCounter {
 public:
  AllocationCounter();
  ~AllocationCounter();
  AllocationCounter(const AllocationCounter&) = delete;
  AllocationCounter& operator=(const AllocationCounter&) = delete;
  [[nodiscard]] size_t count() const;
};

}  // namespace ferry::testkit
