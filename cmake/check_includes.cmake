# Fails when a source file includes across an arrow that design.md
# ("Modules and which way they depend") forbids. Run by the build (target
# check_includes) over the source tree, and by a test over a tree with one
# forbidden include, to prove that it fails.
#
#   cmake -DROOT=<source dir> -P cmake/check_includes.cmake
if(NOT ROOT)
  message(FATAL_ERROR "check_includes: set -DROOT=<source dir>")
endif()

# The SDK's public headers (remex/<name>.h), which nothing under server/
# may include. remex/plugin.h is the plugin module's and not among them.
file(GLOB sdk_headers RELATIVE ${ROOT}/sdk/include/remex
     ${ROOT}/sdk/include/remex/*.h)
list(TRANSFORM sdk_headers PREPEND "remex/")
list(JOIN sdk_headers "|" sdk_public)
string(REPLACE "." "\\." sdk_public "${sdk_public}")
if(NOT sdk_public)
  set(sdk_public "remex/client\\.h")
endif()

set(grpc_or_proto "grpc/|grpcpp/|grpc\\+\\+/|google/protobuf/|\\.pb\\.h|remex/v1/|remex/worker/")
set(sql "libpq|postgres|pg_config")
set(prometheus "prometheus/")
set(not_server_nor_sdk "sdk/|client/|${sdk_public}")

# module folder → forbidden include pattern (a regex over the quoted or
# bracketed path).
set(rules
  "server/executor|${grpc_or_proto}|${sql}|${prometheus}|server/(process|functions|plugin|rpc|store|auth)/|monitoring/|${not_server_nor_sdk}"
  "server/process|server/(functions|plugin|rpc|store|auth)/|monitoring/|grpcpp/|${sql}|${not_server_nor_sdk}"
  "server/functions|server/(plugin|rpc|store|auth)/|monitoring/|${grpc_or_proto}|${sql}|${not_server_nor_sdk}"
  "server/plugin|server/(process|functions|rpc|store|auth)/|monitoring/|${grpc_or_proto}|${sql}|${not_server_nor_sdk}"
  "server/store|server/(process|functions|plugin|rpc|auth)/|monitoring/|grpcpp/|${not_server_nor_sdk}"
  "server/auth|server/|monitoring/|${sql}|${not_server_nor_sdk}"
  "server/rpc|server/(process|functions|plugin|store)/|${sql}|${not_server_nor_sdk}"
  "server|${not_server_nor_sdk}"
  "monitoring|server/(process|functions|plugin|rpc|store|auth)/|${sql}|${not_server_nor_sdk}"
  "common|server/|monitoring/|${not_server_nor_sdk}"
  "client|server/|monitoring/|sdk/|${sdk_public}"
  "sdk|server/|monitoring/|${sql}"
  "cli|server/|monitoring/|client/|${sql}")

set(violations "")
foreach(rule IN LISTS rules)
  string(FIND "${rule}" "|" bar)
  string(SUBSTRING "${rule}" 0 ${bar} module)
  math(EXPR start "${bar} + 1")
  string(SUBSTRING "${rule}" ${start} -1 forbidden)
  file(GLOB_RECURSE sources RELATIVE ${ROOT}
       ${ROOT}/${module}/*.h ${ROOT}/${module}/*.cc)
  foreach(source IN LISTS sources)
    file(STRINGS ${ROOT}/${source} includes REGEX "^[ \t]*#[ \t]*include[ \t]")
    foreach(line IN LISTS includes)
      string(REGEX REPLACE "^[^\"<]*[\"<]([^\">]*)[\">].*$" "\\1" path "${line}")
      if(path MATCHES "(${forbidden})")
        # A module's own files are never forbidden to it.
        if(NOT path MATCHES "^${module}/[^/]*$")
          list(APPEND violations "${source}: ${line}  (${module} may not include it)")
        endif()
      endif()
    endforeach()
  endforeach()
endforeach()

if(violations)
  list(JOIN violations "\n  " text)
  message(FATAL_ERROR "includes across a forbidden arrow (see design.md, \"Modules and which way they depend\"):\n  ${text}")
endif()
