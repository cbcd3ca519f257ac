#!/usr/bin/env bash
# Copies the files of monitoring/ that the chart ships (the alert rules and
# the Grafana dashboard) into helm/remex/monitoring/, so that the chart is
# self-contained: a copy of helm/remex alone, `helm package` or a parent
# chart's charts/ directory has them. tests/helm checks that the copies
# match monitoring/ byte for byte; run this after editing them.
#
# Usage: scripts/sync-chart-monitoring.sh [--check]
#   --check  copy nothing; exit 1 and name the files that differ.
set -euo pipefail

readonly repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly files=(alerts/remex.rules.yml dashboards/remex.json)

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

status=0
for file in "${files[@]}"; do
  src="${repo}/monitoring/${file}"
  dest="${repo}/helm/remex/monitoring/${file}"
  if [[ -L "$(dirname "${dest}")" || -L "${dest}" ]]; then
    # An old checkout's symlink: replace it with a directory.
    [[ ${check} -eq 1 ]] && { echo "symlink: ${dest}" >&2; status=1; continue; }
    rm -f "$(dirname "${dest}")" "${dest}" 2>/dev/null || true
  fi
  if cmp -s "${src}" "${dest}"; then
    continue
  fi
  if [[ ${check} -eq 1 ]]; then
    echo "differs from monitoring/${file}: helm/remex/monitoring/${file}" \
         "(run scripts/sync-chart-monitoring.sh)" >&2
    status=1
  else
    mkdir -p "$(dirname "${dest}")"
    cp "${src}" "${dest}"
    echo "updated helm/remex/monitoring/${file}"
  fi
done
exit "${status}"
