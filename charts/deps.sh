#!/usr/bin/env bash
# Vendors the charts' file:// dependencies, offline: charts/common into every
# service chart, then the service charts into the umbrella charts/platform.
# Writes only gitignored files (charts/*/charts/*.tgz, charts/*/Chart.lock).
#   HELM=.local/tools/bin/helm bash charts/deps.sh
set -euo pipefail
HELM="${HELM:-}"
if [ -z "$HELM" ]; then
  HELM="$(dirname "${BASH_SOURCE[0]}")/../.local/tools/bin/helm"
  [ -x "$HELM" ] || HELM=helm
fi
[[ "$HELM" == */* ]] && HELM="$(cd "$(dirname "$HELM")" && pwd)/$(basename "$HELM")"
cd "$(dirname "${BASH_SOURCE[0]}")"
for chart in */Chart.yaml; do
  dir="$(dirname "$chart")"
  [ "$dir" = platform ] && continue
  grep -q '^dependencies:' "$chart" || continue
  "$HELM" dependency update --skip-refresh "$dir" >/dev/null
done
"$HELM" dependency update --skip-refresh platform >/dev/null
