#!/usr/bin/env bash
# ctest's python_client test: installs the package as the README says (a venv
# on Debian's python3-grpcio, pip offline), then runs its pytest suite
# against the remex-server given.
#
#   run_ctest.sh PYTHON REMEX_SERVER VENV_DIR [pytest args...]
set -euo pipefail

readonly python="$1" server="$2" venv="$3"
shift 3
readonly package="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

rm -rf "${venv}"
"${python}" -m venv --system-site-packages "${venv}"
"${venv}/bin/pip" install --quiet --no-deps --no-build-isolation --no-index \
  "${package}"
# From the venv's folder, so that `remex` is the installed package.
cd "${venv}"
REMEX_SERVER="${server}" exec "${venv}/bin/python" -m pytest \
  -p no:cacheprovider -q -rs "${package}/tests" "$@"
