#!/usr/bin/env bash
# Installs the dependencies, builds, checks the locks with clang's
# thread-safety analysis (scripts/check-thread-safety.sh), runs each fuzz
# target for a few seconds (scripts/fuzz.sh), and runs every test with
# ctest. The exit code is ctest's (or the first step's that
# failed). Extra arguments go to ctest, e.g. ./scripts/test.sh -R rpc
# REMEX_BUILD_DIR picks another build directory (default build/).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/install-deps.sh
./scripts/build.sh
./scripts/check-thread-safety.sh
./scripts/fuzz.sh
ctest --test-dir "${REMEX_BUILD_DIR:-build}" --output-on-failure -j2 --timeout 300 "$@"
