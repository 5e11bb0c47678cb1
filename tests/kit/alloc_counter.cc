#include "kit/alloc_counter.h"

#include <cstdlib>
#include <new>

namespace {
thread_local bool g_counting = false;
thread_local size_t g_allocations = 0;
}  // namespace

// A replaced global operator new must get its memory from malloc.
// NOLINTBEGIN(cppcoreguidelines-no-malloc,cppcoreguidelines-owning-memory)
void* operator new(std::size_t size) {
  if (g_counting) ++g_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t /*size*/) noexcept {
  std::free(p);
}
// NOLINTEND(cppcoreguidelines-no-malloc,cppcoreguidelines-owning-memory)

namespace ferry::testkit {

AllocationCounter::AllocationCounter() {
  g_allocations = 0;
  g_counting = true;
}

AllocationCounter::~AllocationCounter() {
  g_counting = false;
}

size_t AllocationCounter::count() const {
  return g_allocations;
}

}  // namespace ferry::testkit
