#!/usr/bin/env bash
# Configures and builds remex into build/ (RelWithDebInfo, warnings as
# errors).
#
#   build.sh [--server-only] [CMAKE_ARGS...]
#
# By default everything is built: the server, the CLI, the SDK, the
# examples, the tests and the benchmarks. --server-only builds only
# remex-server and the remex tool (and the SDK libraries they link), with
# tests and benchmarks switched off: the README's first command. Extra
# arguments go to the CMake configure step and come last, so they win, e.g.
#   ./scripts/build.sh -DREMEX_SANITIZE=ON
# REMEX_BUILD_DIR picks another build directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly build_dir="${REMEX_BUILD_DIR:-build}"
# Said explicitly either way: a build directory configured by --server-only
# keeps tests and benchmarks off in its cache otherwise.
options=(-DREMEX_BUILD_TESTS=ON -DREMEX_BUILD_BENCHMARKS=ON)
targets=()
if [[ "${1:-}" == "--server-only" ]]; then
  shift
  options=(-DREMEX_BUILD_TESTS=OFF -DREMEX_BUILD_BENCHMARKS=OFF)
  targets=(--target remex-server remex)
fi
cmake -S . -B "${build_dir}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREMEX_WERROR=ON \
  "${options[@]}" "$@"
cmake --build "${build_dir}" -j"$(nproc)" "${targets[@]}"
