// guarded_main: the outermost frame of a program's main(). Inside, errors are values; an
// exception that still reaches main (an allocation failure, say) ends the process with a
// message naming the program and exit status 1, instead of std::terminate and a core dump.
#pragma once

#include <cstdio>
#include <exception>

namespace ferry {

template <typename Body>
int guarded_main(const char* program, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
  } catch (...) {
    std::fprintf(stderr, "%s: error: unknown exception\n", program);
  }
  return 1;
}

}  // namespace ferry
