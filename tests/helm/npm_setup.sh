#!/usr/bin/env bash
# Installs the pinned npm packages of tests/helm (kubernetes-models) into
# DEST/node_modules with `npm ci`, unless DEST already holds exactly this
# package-lock.json. Usage: npm_setup.sh DEST
set -euo pipefail

readonly src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly dest="$1"

mkdir -p "${dest}"
if [[ -d "${dest}/node_modules" ]] &&
    cmp -s "${src}/package-lock.json" "${dest}/package-lock.json"; then
  echo "npm_setup: ${dest}/node_modules is up to date"
  exit 0
fi
command -v npm >/dev/null || {
  echo "npm_setup: npm is missing (scripts/install-deps.sh installs it)" >&2
  exit 1
}
cp "${src}/package.json" "${src}/package-lock.json" "${dest}/"
cd "${dest}"
npm ci --no-audit --no-fund --loglevel=error
