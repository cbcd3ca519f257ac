#!/usr/bin/env bash
# Installs the Debian 12 packages that remex needs to build and to run every
# test. Idempotent: when all of them are installed already it does nothing, so
# CI re-runs are fast. Run as root (or with sudo available).
set -euo pipefail

readonly PACKAGES=(
  build-essential cmake pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libssl-dev
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libyaml-cpp-dev nlohmann-json3-dev prometheus-cpp-dev
  clang-format
  python3 python3-grpcio python3-grpc-tools python3-protobuf
  python3-pkg-resources python3-yaml
  prometheus
)

# Prints the packages of PACKAGES that are not fully installed.
missing_packages() {
  local pkg
  for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "${pkg}" 2>/dev/null |
        grep -q '^install ok installed$'; then
      echo "${pkg}"
    fi
  done
}

main() {
  local missing
  mapfile -t missing < <(missing_packages)
  if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#PACKAGES[@]} packages are installed"
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
