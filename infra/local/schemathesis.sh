#!/usr/bin/env bash
# Installs a pinned schemathesis into .local/tools/schemathesis-<ver> (idempotent) and prints the binary's path.
set -euo pipefail
VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="$ROOT/.local/tools/schemathesis-$VERSION"
if [ ! -x "$VENV/bin/st" ] || ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$VERSION"; then
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
fi
echo "$VENV/bin/st"
