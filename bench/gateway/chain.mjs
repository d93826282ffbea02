// Shared by the gateway bench scripts: the zero-delay engine fixture, billing, scheduler and
// orchestrator started once, then any number of REAL gateway processes in front of them, plus
// a tenant, user and key made through the gateway's admin API.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { freePort, freePorts, repoRoot, serviceEnv, spawnService, waitReady, SERVED_MODEL } from '../../infra/local/stack.mjs';

export const ADMIN_TOKEN = `bench-admin-${randomUUID()}`;
export const MODEL = SERVED_MODEL;

export function infraEnv() {
  const names = ['DATABASE_URL', 'REDIS_URL', 'KAFKA_BROKERS'];
  const missing = names.filter((name) => !process.env[name]);
  if (missing.length) throw new Error(`${missing.join(', ')} not set: set -a; source .local/infra.env; set +a`);
  return { ...Object.fromEntries(names.map((name) => [name, process.env[name]])), MODEL_PATH: process.env.MODEL_PATH ?? '' };
}

/** Starts fixture + billing + scheduler + orchestrator; `addGateway` starts gateways on demand. */
/** `env`: extra environment for every service process (e.g. NODE_OPTIONS for --cpu-prof), a function of its name. */
export async function startChain({ logLevel = 'warn', keep = false, env: extraEnv = () => ({}) } = {}) {
  // BENCH_SERVICE_NODE_OPTIONS: Node flags for the services only, not the load generators (e.g. GC settings to compare).
  const serviceNodeOptions = process.env.BENCH_SERVICE_NODE_OPTIONS;
  const env = (name) => {
    const extra = extraEnv(name);
    return serviceNodeOptions ? { ...extra, NODE_OPTIONS: [serviceNodeOptions, extra.NODE_OPTIONS].filter(Boolean).join(' ') } : extra;
  };
  const infra = infraEnv();
  const ports = await freePorts();
  const children = [];
  /** Every process by name (engine-fixture, billing, ..., gateway-1, ...), e.g. for their peak memory. */
  const processes = new Map();
  const logs = new Map();
  const track = (name, child) => {
    processes.set(name, child);
    const lines = [];
    logs.set(name, lines);
    // BENCH_SERVICE_LOG_DIR: every process's output to <dir>/<name>.log (e.g. with --trace-gc, see trace-gc.mjs).
    if (process.env.BENCH_SERVICE_LOG_DIR) {
      const file = createWriteStream(path.join(process.env.BENCH_SERVICE_LOG_DIR, `${name}.log`));
      child.stdout?.pipe(file);
      child.stderr?.pipe(file);
    }
    const collect = (chunk) => { if (keep) { lines.push(...chunk.toString().split('\n').filter(Boolean)); if (lines.length > 500) lines.splice(0, lines.length - 500); } };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    children.push(child);
    return child;
  };
  const fixture = track('engine-fixture', spawn(process.execPath, [path.join(repoRoot, 'bench/gateway/engine-fixture.mjs')], {
    env: { ...process.env, PORT: String(ports['cpu-engine'].http), MODEL_NAME: SERVED_MODEL }, stdio: ['ignore', 'pipe', 'pipe'],
  }));
  await waitReady(`http://127.0.0.1:${ports['cpu-engine'].http}/health`, { name: 'engine-fixture', isAlive: () => fixture.exitCode === null });
  for (const name of ['billing', 'inference-scheduler', 'orchestrator']) {
    const child = track(name, spawnService(name, { ...serviceEnv(name, ports, infra), LOG_LEVEL: logLevel, ...env(name) }));
    await waitReady(`http://127.0.0.1:${ports[name].http}/readyz`, { name, timeoutMs: 120_000, isAlive: () => child.exitCode === null });
  }
  const queuePrefix = `bench-${randomUUID().slice(0, 8)}`;
  let gateways = 0;
  return {
    ports,
    logs,
    processes,
    engineUrl: `http://127.0.0.1:${ports['cpu-engine'].http}`,
    /** A real gateway process; `env` overrides (e.g. REDIS_URL, REDIS_TIMEOUT_MS). */
    async addGateway(overrides = {}) {
      const port = await freePort();
      const name = `gateway-${++gateways}`;
      const child = track(name, spawnService('gateway', {
        ...serviceEnv('gateway', ports, infra), HTTP_PORT: String(port), ADMIN_TOKEN, QUEUE_PREFIX: queuePrefix, LOG_LEVEL: logLevel, ...env(name), ...overrides,
      }));
      await waitReady(`http://127.0.0.1:${port}/readyz`, { name, timeoutMs: 120_000, isAlive: () => child.exitCode === null });
      return { name, url: `http://127.0.0.1:${port}`, child };
    },
    async stop() {
      await Promise.all(children.map(stopProcess));
    },
  };
}

/** SIGTERM (a graceful drain), SIGKILL after 10 s. */
export async function stopProcess(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
    child.kill('SIGTERM');
  });
}

export async function admin(gatewayUrl, method, pathname, body) {
  const response = await fetch(`${gatewayUrl}/admin${pathname}`, {
    method, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`admin ${method} ${pathname}: ${response.status} ${text}`);
  return JSON.parse(text);
}

/** A fresh tenant with the given limit overrides, one user and one API key. */
export async function createTenant(gatewayUrl, limits) {
  const tenantId = `bench_${Date.now()}_${randomUUID().slice(0, 6)}`;
  await admin(gatewayUrl, 'POST', '/tenants', { id: tenantId, name: 'bench', limits });
  const userId = `${tenantId}_user`;
  await admin(gatewayUrl, 'POST', `/tenants/${tenantId}/users`, { id: userId });
  const { key, id: apiKeyId } = await admin(gatewayUrl, 'POST', `/tenants/${tenantId}/keys`, { user_id: userId, name: 'bench' });
  return { tenantId, userId, apiKeyId, apiKey: key };
}

/** Waits until the gateway lists the model (the chain down to the engine serves it). */
export async function waitServing(gatewayUrl, apiKey) {
  for (let i = 0; i < 240; i++) {
    const response = await fetch(`${gatewayUrl}/v1/models`, { headers: { authorization: `Bearer ${apiKey}` } }).catch(() => undefined);
    if (response?.ok && (await response.json()).data.some((model) => model.id === SERVED_MODEL)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${gatewayUrl} never listed ${SERVED_MODEL}`);
}

/** One non-streamed chat; resolves with status, timing and usage, never throws. */
export async function chat(gatewayUrl, apiKey, { maxTokens = 5, timeoutMs = 30_000 } = {}) {
  const started = Date.now();
  try {
    const response = await fetch(`${gatewayUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: SERVED_MODEL, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: maxTokens }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = await response.json().catch(() => ({}));
    return { status: response.status, started, ms: Date.now() - started, usage: body.usage, code: body.error?.code, message: body.error?.message, requestId: response.headers.get('x-request-id') };
  } catch (error) {
    return { status: 0, started, ms: Date.now() - started, error: String(error?.name ?? error) };
  }
}
