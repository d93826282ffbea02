#!/usr/bin/env bash
# Installs ghz (the gRPC load generator, https://ghz.sh) into <repo>/.local/tools/bin
# with `go install` from the Go module proxy. Idempotent; prints the binary's path.
#   bash bench/tools/ghz.sh
set -euo pipefail
GHZ_VERSION="${GHZ_VERSION:-v0.120.0}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN_DIR="$REPO_ROOT/.local/tools/bin"
STAMP="$BIN_DIR/.ghz-$GHZ_VERSION"
mkdir -p "$BIN_DIR"
if [ ! -x "$BIN_DIR/ghz" ] || [ ! -f "$STAMP" ]; then
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then PATH="/usr/local/go/bin:$PATH"; fi
  command -v go >/dev/null 2>&1 || { echo "[ghz] Go is required to build ghz" >&2; exit 1; }
  echo "[ghz] building ghz $GHZ_VERSION with $(go version | awk '{print $3}')" >&2
  GOBIN="$BIN_DIR" go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION" >&2
  rm -f "$BIN_DIR"/.ghz-* && touch "$STAMP"
fi
echo "$BIN_DIR/ghz"
