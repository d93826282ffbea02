#!/usr/bin/env bash
# npm start: installs what is missing, starts the local infrastructure and every
# service, seeds a development tenant, user and API key, and prints where it is.
set -euo pipefail
cd "$(dirname "$0")/../.."
source infra/local/prepare.sh
bash infra/local/infra.sh start >/dev/null
export PLATFORM_LOCAL_DIR="${PLATFORM_LOCAL_DIR:-$PWD/.local}"
gateway_url="$(node infra/local/stack.mjs start | node -p 'JSON.parse(require("fs").readFileSync(0)).gatewayUrl')"
set -a; source "$PLATFORM_LOCAL_DIR/infra.env"; set +a
credentials="$PLATFORM_LOCAL_DIR/dev-credentials.json"
node services/gateway/dist/cli/seed-dev.js "$credentials" "$gateway_url" >/dev/null
api_key="$(node -p "require('$credentials').apiKey")"
cat <<TXT

The platform is running.
  gateway      $gateway_url   (OpenAI-compatible: $gateway_url/v1)
  API key      $api_key
  credentials  $credentials
  logs         $PLATFORM_LOCAL_DIR/logs/

Try it:
  curl -N $gateway_url/v1/chat/completions -H "Authorization: Bearer $api_key" \\
    -H 'content-type: application/json' \\
    -d '{"model":"gemma-3-270m","stream":true,"messages":[{"role":"user","content":"Say hello"}]}'
  curl $gateway_url/v1/embeddings -H "Authorization: Bearer $api_key" \\
    -H 'content-type: application/json' -d '{"model":"all-minilm-l6-v2","input":"Say hello"}'

Stop it with: npm stop
TXT
