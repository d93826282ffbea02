#!/usr/bin/env bash
# npm stop: stops every service (draining open streams), then the infrastructure.
set -euo pipefail
cd "$(dirname "$0")/../.."
source infra/local/node.sh
export PLATFORM_LOCAL_DIR="${PLATFORM_LOCAL_DIR:-$PWD/.local}"
node infra/local/stack.mjs stop
bash infra/local/infra.sh stop
