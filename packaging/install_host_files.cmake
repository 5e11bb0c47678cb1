# Runs inside `cmake --install` (see CMakeLists.txt here): CMAKE_INSTALL_PREFIX is the prefix
# of this installation (--prefix wins over the configured one); file(INSTALL) applies DESTDIR
# itself and records every file in install_manifest.txt.
set(_ferry_bindir "${CMAKE_INSTALL_PREFIX}/bin")
set(_ferry_docdir "${CMAKE_INSTALL_PREFIX}/share/doc/ferry")
set(_ferry_unitdir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
# The FHS puts a /usr installation's configuration in /etc, not /usr/etc.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(_ferry_etcdir "/etc/ferry")
else()
  set(_ferry_etcdir "${CMAKE_INSTALL_PREFIX}/etc/ferry")
endif()

file(READ "${FERRY_UNIT_TEMPLATE}" _ferry_unit)
string(REPLACE "@FERRY_BINDIR@" "${_ferry_bindir}" _ferry_unit "${_ferry_unit}")
string(REPLACE "@FERRY_DOCDIR@" "${_ferry_docdir}" _ferry_unit "${_ferry_unit}")
# Staged under a name of its own: two installs of one build tree may run at once (tests).
string(MD5 _ferry_tag "$ENV{DESTDIR}|${CMAKE_INSTALL_PREFIX}")
string(RANDOM LENGTH 8 _ferry_random)
set(_ferry_stage "${FERRY_STAGING_DIR}/install-${_ferry_tag}-${_ferry_random}")
file(WRITE "${_ferry_stage}/ferry-snapshotter.service" "${_ferry_unit}")

set(_ferry_mode PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL DESTINATION "${_ferry_unitdir}" TYPE FILE ${_ferry_mode} FILES "${_ferry_stage}/ferry-snapshotter.service")
file(REMOVE_RECURSE "${_ferry_stage}")
file(INSTALL DESTINATION "${_ferry_etcdir}" TYPE FILE ${_ferry_mode} FILES ${FERRY_EXAMPLE_CONFIG})
foreach(_ferry_doc IN LISTS FERRY_DOCS)
  if(EXISTS "${_ferry_doc}")
    file(INSTALL DESTINATION "${_ferry_docdir}" TYPE FILE ${_ferry_mode} FILES "${_ferry_doc}")
  endif()
endforeach()
