# The build's real identity, shown by `ferryd --version` and the daemon API.
execute_process(COMMAND git rev-parse --short=12 HEAD
                WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}
                OUTPUT_VARIABLE FERRY_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE
                ERROR_QUIET RESULT_VARIABLE _git_rc)
if(NOT _git_rc EQUAL 0 OR FERRY_GIT_COMMIT STREQUAL "")
  set(FERRY_GIT_COMMIT "unknown")
endif()
string(TIMESTAMP FERRY_BUILD_TIME "%Y-%m-%dT%H:%M:%SZ" UTC)
set(FERRY_PROFILE "${CMAKE_BUILD_TYPE}")
if(FERRY_SANITIZE)
  set(FERRY_PROFILE "${FERRY_PROFILE}+asan+ubsan")
endif()
configure_file(${CMAKE_SOURCE_DIR}/src/common/build_info.h.in
               ${CMAKE_BINARY_DIR}/generated/common/build_info.h @ONLY)
