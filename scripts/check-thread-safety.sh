#!/usr/bin/env bash
# Builds the code that uses absl::Mutex with clang and its thread-safety
# analysis as an error (-Wthread-safety: ABSL_GUARDED_BY,
# ABSL_EXCLUSIVE_LOCKS_REQUIRED and the like are checked, not just written).
# The libraries only: tests and benchmarks are built by ./scripts/build.sh.
# REMEX_BUILD_DIR picks the main build directory; this one is its sibling
# with the suffix -thread-safety.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly build_dir="${REMEX_BUILD_DIR:-build}-thread-safety"
cmake -S . -B "${build_dir}" -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O0 \
  -DREMEX_BUILD_TESTS=OFF -DREMEX_BUILD_BENCHMARKS=OFF \
  "-DCMAKE_CXX_FLAGS=-Wthread-safety -Werror=thread-safety" >/dev/null
cmake --build "${build_dir}" -j"$(nproc)" --target remex-server remex
echo "check-thread-safety: clean"
