#!/usr/bin/env bash
# Source this file: Node 24 on PATH, dependencies installed when the lockfile
# changed, contracts checked against proto/, and the TypeScript build up to date.
_repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$_repo_root/infra/local/node.sh"
(
  set -euo pipefail
  cd "$_repo_root"
  stamp=".local/npm-install.stamp"
  want="$(sha256sum package-lock.json | cut -d' ' -f1)"
  if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[prepare] installing dependencies" >&2
    npm ci --no-audit --no-fund --loglevel=error >&2
    mkdir -p .local && echo "$want" >"$stamp"
  fi
  echo "[prepare] building" >&2
  npx --no-install tsc -b tsconfig.build.json >&2
)
