#!/usr/bin/env bash
# Installs the dependencies, builds, and runs every test with ctest. The exit
# code is ctest's. Extra arguments go to ctest, e.g. ./scripts/test.sh -R rpc
# REMEX_BUILD_DIR picks another build directory (default build/).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/install-deps.sh
./scripts/build.sh
ctest --test-dir "${REMEX_BUILD_DIR:-build}" --output-on-failure -j2 --timeout 300 "$@"
