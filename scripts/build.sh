#!/usr/bin/env bash
# Configures and builds remex into build/ (RelWithDebInfo, warnings as
# errors). Extra arguments are passed to the CMake configure step, e.g.
#   ./scripts/build.sh -DREMEX_SANITIZE=ON
# REMEX_BUILD_DIR picks another build directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly build_dir="${REMEX_BUILD_DIR:-build}"
cmake -S . -B "${build_dir}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREMEX_WERROR=ON "$@"
cmake --build "${build_dir}" -j"$(nproc)"
