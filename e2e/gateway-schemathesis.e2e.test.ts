import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { TestStack, type Credentials } from './support/stack';

/**
 * schemathesis (pinned in infra/local/schemathesis.sh, one worker: see there) fuzzes every operation
 * of the gateway's /openapi.json with a tenant's key, then the operator operations with the
 * admin credential (with a tenant's key they stop at 401): no answer may be a 5xx,
 * and answers must match the documented schemas. MAX_OUTPUT_TOKENS is small so
 * generated completions that pass validation stay quick on the CPU engine.
 */
let stack: TestStack;
let tenant: Credentials;
const root = path.resolve(import.meta.dirname, '..');
const ADMIN_TOKEN = `admin-${randomUUID()}`;

beforeAll(async () => {
  stack = await TestStack.start({ gateway: { MAX_OUTPUT_TOKENS: '8', DEFAULT_MAX_TOKENS: '4', ADMIN_TOKEN } });
  tenant = stack.createTenant();
  await stack.waitUntilServing(tenant.apiKey);
});
afterEach((context) => {
  if (context.task.result?.state === 'fail') stack?.printLogs(40);
});
afterAll(async () => stack?.stop());

/** One schemathesis run against the live /openapi.json; returns its output after the common checks. */
function fuzz(authorization: string, extra: string[] = []): string {
  const install = spawnSync(path.join(root, 'infra/local/schemathesis.sh'), { encoding: 'utf8' });
  expect(install.status, install.stderr).toBe(0);
  const st = install.stdout.trim();
  const run = spawnSync(st, [
    'run', `${stack.gatewayUrl}/openapi.json`,
    '--header', `Authorization: Bearer ${authorization}`,
    '--checks', 'not_a_server_error,response_schema_conformance',
    '--phases', 'examples,coverage,fuzzing',
    '--max-examples', '6', '--seed', '1', '--workers', '1', '--max-time', '30',
    '--request-timeout', '20', '--generation-deterministic',
    ...extra,
  ], { cwd: os.tmpdir(), encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', SCHEMATHESIS_HOOKS: '' }, timeout: 90_000 });
  const output = `${run.stdout}\n${run.stderr}`;
  expect(output, output.slice(-6000)).not.toMatch(/Server error/);
  expect(run.status, output.slice(-4000)).toBe(0);
  expect(output).toMatch(/passed/i);
  return output;
}

it('finds no 5xx and no schema violation in the OpenAPI document', () => {
  fuzz(tenant.apiKey);
});

it('finds no 5xx in the operator operations with the admin credential', () => {
  const output = fuzz(ADMIN_TOKEN, ['--include-path-regex', '^/(v1/)?admin/']);
  expect(output).toMatch(/Operations:\s+8 selected/); // the six /admin and two /v1/admin operations
});
