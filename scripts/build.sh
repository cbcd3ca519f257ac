#!/usr/bin/env bash
# Configures and builds remex into build/ (RelWithDebInfo, warnings as
# errors). Extra arguments are passed to the CMake configure step, e.g.
#   ./scripts/build.sh -DREMEX_SANITIZE=ON
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREMEX_WERROR=ON "$@"
cmake --build build -j"$(nproc)"
