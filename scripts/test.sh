#!/usr/bin/env bash
# Installs the dependencies, builds, and runs every test with ctest. The exit
# code is ctest's. Extra arguments go to ctest, e.g. ./scripts/test.sh -R rpc
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/install-deps.sh
./scripts/build.sh
ctest --test-dir build --output-on-failure -j2 --timeout 300 "$@"
