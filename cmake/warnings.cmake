# The project's warnings, on everywhere in our own code. They are errors only with FERRY_WERROR
# (on in scripts/test.sh, CI and development builds): a packager's compiler or flags may warn
# where ours do not, and that must not stop a distribution build.
option(FERRY_WERROR "Treat compiler warnings as errors" OFF)
add_compile_options(-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                    -Wold-style-cast -Wcast-align -Wunused -Woverloaded-virtual
                    -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
if(FERRY_WERROR)
  add_compile_options(-Werror)
endif()
# g++ 12 at -O3 (Release) reports -Wrestrict on `"text" + std::string&&` inside libstdc++'s
# string (GCC bug 105329): a false positive in every such expression, not in our code.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  add_compile_options(-Wno-restrict)
endif()
if(FERRY_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()
