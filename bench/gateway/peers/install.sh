#!/usr/bin/env bash
# Installs the two peer gateways the gateway benchmark compares against, outside the project's
# package.json (bench-only tools live in the git-ignored .local/tools/):
#   - LiteLLM proxy into .local/tools/litellm-venv (Python venv)
#   - Portkey gateway + autocannon (used by profile.mjs) into .local/tools/bench-node (npm)
# Idempotent: re-running with the pinned versions already installed changes nothing.
#
# Why these pins:
#   litellm 1.106.2 is the newest release whose [proxy] extra resolves on the index reachable here.
#   Every later one (1.106.3+, 1.108.x, 1.109.x, and late patches of older lines such as 1.103.11,
#   1.104.9, 1.105.7) requires certifi>=2026.10.19, and the newest certifi on the index is 2026.10.18.
#   @portkey-ai/gateway 1.15.2 is the newest on npm. Its postinstall runs patch-package, which has
#   nothing to apply (the published package ships no patches/), so it is installed with
#   --ignore-scripts and loses nothing.
#   @hono/node-server 1.14.1: Portkey asks for ^1.3.3, which npm resolves to the newest 1.x, and from
#   1.14.2 on every streamed chat completion through Portkey on Node fails with "TypeError: immutable"
#   (it appends x-portkey-* headers to a fetch Response's headers; Portkey-AI/gateway issue 1389,
#   still open). 1.14.1 is the last release that copies those headers; it is pinned with npm
#   overrides (package.json of .local/tools/bench-node).
set -euo pipefail
cd "$(dirname "$0")/../../.."
LITELLM_VERSION=1.106.2
PORTKEY_VERSION=1.15.2
AUTOCANNON_VERSION=8.0.0
HONO_NODE_SERVER_VERSION=1.14.1
HONO_NODE_WS_VERSION=1.2.0   # the last @hono/node-ws whose peer range admits 1.14.1 (only Portkey's /v1/realtime uses it)

source infra/local/node.sh >/dev/null

venv=.local/tools/litellm-venv
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
have=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null || true)
if [ "$have" != "$LITELLM_VERSION" ]; then
  "$venv/bin/pip" install --quiet "litellm[proxy]==$LITELLM_VERSION"
fi
echo "litellm $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))') in $venv"

tools=.local/tools/bench-node
mkdir -p "$tools"
[ -f "$tools/package.json" ] || (cd "$tools" && npm init -y >/dev/null)
version_of() { node -p "require('./$1/package.json').version" 2>/dev/null || true; }
nm=$tools/node_modules
portkey_hono=$nm/@portkey-ai/gateway/node_modules/@hono/node-server   # a nested copy would bypass the pin
if [ "$(version_of "$nm/@portkey-ai/gateway")" != "$PORTKEY_VERSION" ] || [ "$(version_of "$nm/autocannon")" != "$AUTOCANNON_VERSION" ] \
  || [ "$(version_of "$nm/@hono/node-server")" != "$HONO_NODE_SERVER_VERSION" ] \
  || [ -e "$portkey_hono" ]; then
  # overrides apply only when npm resolves afresh, so the old lock and Portkey's tree go first.
  rm -rf "$tools/package-lock.json" "$nm/@portkey-ai" "$nm/@hono"
  (cd "$tools" && npm pkg set "overrides.@hono/node-server=$HONO_NODE_SERVER_VERSION" "overrides.@hono/node-ws=$HONO_NODE_WS_VERSION" \
    && npm install --no-audit --no-fund --save-exact --ignore-scripts --loglevel=error \
      "autocannon@$AUTOCANNON_VERSION" "@portkey-ai/gateway@$PORTKEY_VERSION" >/dev/null)
fi
[ ! -e "$portkey_hono" ] || { echo "a nested @hono/node-server $(version_of "$portkey_hono") under Portkey escaped the pin" >&2; exit 1; }
echo "@portkey-ai/gateway $(version_of "$nm/@portkey-ai/gateway") (@hono/node-server $(version_of "$nm/@hono/node-server")), autocannon $(version_of "$nm/autocannon") in $tools"
