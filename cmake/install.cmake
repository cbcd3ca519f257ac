# `cmake --install build [--prefix DIR]`: the binaries, and the SDK and the
# plugin API as a CMake package, so that a service in its own repository
# writes
#
#   find_package(remex CONFIG REQUIRED)
#   target_link_libraries(my_service PRIVATE remex::sdk)     # a client
#   target_link_libraries(my_plugin PRIVATE remex::plugin)   # a plugin
#
# remexConfig.cmake finds the dependencies itself (gRPC and protobuf through
# pkg-config, as this build does; Abseil and nlohmann_json by their CMake
# packages). Included by the top-level CMakeLists.txt after every module.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(REMEX_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/remex)

install(TARGETS remex-server remex RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The SDK is static; the internal libraries it links (its transport, the
# generated messages, the status helpers) are installed beside it, with no
# headers but the generated messages that its public headers include.
# Exported as remex::<name>.
set_target_properties(remex_sdk PROPERTIES EXPORT_NAME sdk)
set_target_properties(remex_plugin_api PROPERTIES EXPORT_NAME plugin)
set_target_properties(remex_proto PROPERTIES EXPORT_NAME proto)
set_target_properties(remex_client PROPERTIES EXPORT_NAME internal_client)
set_target_properties(remex_common PROPERTIES EXPORT_NAME internal_common)
set_target_properties(remex_common_grpc PROPERTIES
  EXPORT_NAME internal_common_grpc)
set_target_properties(remex_common_proto PROPERTIES
  EXPORT_NAME internal_common_proto)
install(TARGETS remex_sdk remex_client remex_proto remex_common
                remex_common_grpc remex_common_proto remex_plugin_api
  EXPORT remexTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/sdk/include/remex
                  ${PROJECT_SOURCE_DIR}/server/plugin/include/remex
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.h")
install(FILES
  ${PROJECT_BINARY_DIR}/protos/remex/v1/executor.pb.h
  ${PROJECT_BINARY_DIR}/protos/remex/v1/executor.grpc.pb.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/remex/v1)
# The API itself, for clients in other languages.
install(FILES ${PROJECT_SOURCE_DIR}/protos/remex/v1/executor.proto
  DESTINATION ${CMAKE_INSTALL_DATADIR}/remex/proto/remex/v1)

install(EXPORT remexTargets
  NAMESPACE remex::
  DESTINATION ${REMEX_CMAKE_DIR})
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/remexConfig.cmake.in
  ${PROJECT_BINARY_DIR}/remexConfig.cmake
  INSTALL_DESTINATION ${REMEX_CMAKE_DIR})
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/remexConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/remexConfig.cmake
              ${PROJECT_BINARY_DIR}/remexConfigVersion.cmake
  DESTINATION ${REMEX_CMAKE_DIR})
