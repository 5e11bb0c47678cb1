// CLI11, included with one warning silenced: g++ 12 reports a false -Wnull-dereference inside
// libstdc++ when it inlines CLI::detail::split (CLI/StringTools.hpp) into our code.
#pragma once

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <CLI/CLI.hpp>
#pragma GCC diagnostic pop
