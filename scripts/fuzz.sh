#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan, UBSan,
# coverage) and runs each one on its committed corpus for a bounded time:
# every committed input is replayed first, then the fuzzer mutates for the
# rest of the time. New inputs go to a scratch directory, not to the
# repository. Fails (exit 1) on the first target that finds a crash, a leak,
# undefined behaviour or a timeout; the input is left in
# <build>-fuzz/fuzz-artifacts/.
#
#   ./scripts/fuzz.sh                 # every target, FUZZ_SECONDS (5) each
#   FUZZ_SECONDS=600 ./scripts/fuzz.sh config_fuzzer   # one, longer
#
# REMEX_BUILD_DIR picks the main build directory; this one is its sibling
# with the suffix -fuzz. tests/fuzz/README.md says more.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly build_dir="${REMEX_BUILD_DIR:-build}-fuzz"
readonly seconds="${FUZZ_SECONDS:-5}"
readonly artifacts="${build_dir}/fuzz-artifacts"
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(auth_file_fuzzer command_args_fuzzer config_fuzzer
           page_token_fuzzer request_fuzzer worker_protocol_fuzzer)
fi

cmake -S . -B "${build_dir}" -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREMEX_FUZZ=ON -DREMEX_WERROR=ON \
  -DREMEX_BUILD_TESTS=OFF -DREMEX_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "${build_dir}" -j"$(nproc)" --target "${targets[@]}"

mkdir -p "${artifacts}"
scratch="$(mktemp -d)"
trap 'rm -rf "${scratch}"' EXIT

for target in "${targets[@]}"; do
  mkdir -p "${scratch}/${target}"
  log="${scratch}/${target}.log"
  # -max_len bounds an input (the formats' shapes fit; the worker target's
  # socket buffers too); -timeout and -rss_limit_mb make a hang or a
  # blow-up a failure.
  if ! "${build_dir}/tests/fuzz/${target}" \
      -max_total_time="${seconds}" -max_len=4096 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="${artifacts}/${target}-" \
      "${scratch}/${target}" "tests/fuzz/corpus/${target}" >"${log}" 2>&1; then
    tail -n 60 "${log}"
    echo "fuzz: ${target} FAILED; the input is in ${artifacts}/" >&2
    exit 1
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "${log}")"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "${log}")"
  echo "fuzz: ${target}: ${runs} inputs in ${seconds} s (${rate}/s), clean"
done
echo "fuzz: clean"
