#!/usr/bin/env bash
# Lints proto/ and regenerates libs/contracts/src/gen with protoc-gen-es.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PWD/../node_modules/.bin:$PATH"
buf lint
buf generate
