#!/usr/bin/env bash
# npm test: builds, starts a fresh copy of the infrastructure on its own ports
# (a running dev stack is left alone), runs every test, stops what it started,
# and ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
source infra/local/prepare.sh

export PLATFORM_LOCAL_DIR="$PWD/.local/test"
export PG_PORT="${TEST_PG_PORT:-55532}" REDIS_PORT="${TEST_REDIS_PORT:-56479}"
export KAFKA_PORT="${TEST_KAFKA_PORT:-59192}" KAFKA_CONTROLLER_PORT="${TEST_KAFKA_CONTROLLER_PORT:-59193}"
export STRIPE_MOCK_PORT="${TEST_STRIPE_MOCK_PORT:-12211}" STRIPE_MOCK_HTTPS_PORT="${TEST_STRIPE_MOCK_HTTPS_PORT:-12212}"

bash infra/local/infra.sh stop >/dev/null 2>&1 || true
rm -rf "$PLATFORM_LOCAL_DIR"
bash infra/local/infra.sh start >/dev/null
trap 'bash infra/local/infra.sh stop >/dev/null 2>&1 || true' EXIT
set -a; source "$PLATFORM_LOCAL_DIR/infra.env"; set +a

results="$PLATFORM_LOCAL_DIR/test-results.json"
status=0
npx --no-install vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@" || status=$?
node -e '
  const fs = require("fs");
  let passed = 0, failed = 0;
  try {
    const r = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    passed = r.numPassedTests;
    failed = r.numFailedTests + r.numPendingTests + r.numTodoTests;
    // A file that failed to load has no tests to count; count it as a failure.
    failed += r.testResults.filter((f) => f.status === "failed" && f.assertionResults.length === 0).length;
  } catch { failed = 1; }
  console.log(`${passed} passed, ${failed} failed`);
' "$results"
exit "$status"
