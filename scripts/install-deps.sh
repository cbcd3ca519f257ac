#!/usr/bin/env bash
# Installs the Debian 12 packages that remex needs to build and to run every
# test. Idempotent: when all of them are installed already it does nothing, so
# CI re-runs are fast. Run as root (or with sudo available).
#
#   install-deps.sh               build and test (the README's commands)
#   install-deps.sh --build-only  only what `./scripts/build.sh --server-only`
#                                 needs (tests and benchmarks off): the
#                                 README's first command and the image's
#                                 build stage
#   install-deps.sh --runtime     only what remex-server needs to run:
#                                 scripts/runtime-packages.txt (the image's
#                                 runtime stage; tests/helm ImageTest checks it
#                                 against the binary's shared libraries)
set -euo pipefail

readonly BUILD_PACKAGES=(
  build-essential cmake pkg-config git ccache
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libssl-dev
  libabsl-dev
  libyaml-cpp-dev nlohmann-json3-dev prometheus-cpp-dev
  libpq-dev
  # Logging (spdlog, with fmt), the CLI's parser (CLI11, header-only), and
  # grpc/reflection/v1/reflection.proto (Debian's gRPC serves only v1alpha).
  libspdlog-dev libcli11-dev grpc-proto
)
readonly TEST_PACKAGES=(
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format
  # tests/auth and remex-bench --tls make certificates with the openssl tool.
  openssl
  # scripts/check-thread-safety.sh: clang's -Wthread-safety; scripts/fuzz.sh:
  # libFuzzer and the sanitizer runtimes.
  clang libclang-rt-14-dev
  python3 python3-grpcio python3-grpc-tools python3-protobuf
  python3-pkg-resources
  # clients/python: its venv install (pip, venv, setuptools, wheel) and pytest.
  python3-pip python3-venv python3-setuptools python3-wheel python3-pytest
  # tests/helm: the chart renderer, schema checks, yamllint, the image's init.
  golang-go golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev
  python3-jsonschema python3-yaml yamllint tini
  # tests/monitoring: a real Prometheus and promtool.
  prometheus
  # Tests start a real PostgreSQL (tests/testing/postgres_server.h): initdb
  # and postgres from /usr/lib/postgresql/15/bin.
  postgresql-15
)
# PACKAGE:COMMAND pairs: installed only when COMMAND is missing (NodeSource's
# nodejs, for one, brings npm and conflicts with Debian's npm package).
readonly TOOL_PACKAGES=(nodejs:node npm:npm)
readonly RUNTIME_LIST="$(dirname "${BASH_SOURCE[0]}")/runtime-packages.txt"

PACKAGES=()
TOOLS=()

# Prints the packages of PACKAGES that are not fully installed, and those of
# TOOLS whose command is missing.
missing_packages() {
  local pkg tool
  for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "${pkg}" 2>/dev/null |
        grep -q '^install ok installed$'; then
      echo "${pkg}"
    fi
  done
  for tool in "${TOOLS[@]}"; do
    command -v "${tool#*:}" >/dev/null || echo "${tool%%:*}"
  done
}

# Sets PACKAGES and TOOLS for the mode given on the command line.
select_packages() {
  case "${1:-}" in
    "")
      PACKAGES=("${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}")
      TOOLS=("${TOOL_PACKAGES[@]}")
      ;;
    --build-only) PACKAGES=("${BUILD_PACKAGES[@]}") ;;
    --runtime) mapfile -t PACKAGES < <(grep -o '^[^#[:space:]]\+' "${RUNTIME_LIST}") ;;
    *)
      echo "usage: install-deps.sh [--build-only | --runtime]" >&2
      return 2
      ;;
  esac
}

main() {
  select_packages "$@"
  local missing
  mapfile -t missing < <(missing_packages)
  if ((${#missing[@]} == 0)); then
    echo "install-deps: all $((${#PACKAGES[@]} + ${#TOOLS[@]})) packages are installed"
    return 0
  fi
  echo "install-deps: installing ${missing[*]}"
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || {
      echo "install-deps: run as root (or install sudo)" >&2
      return 1
    }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

main "$@"
