// The platform's services as local processes: one table of what runs where,
// used by `npm start` (detached, logs under <state>/logs) and by the e2e suite
// (attached children on free ports).
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const defaultPorts = {
  gateway: { http: 8080 },
  orchestrator: { http: 8081, grpc: 50051 },
  'inference-scheduler': { http: 8082, grpc: 50052 },
  billing: { http: 8083, grpc: 50053 },
  retrieval: { http: 8084 },
  'tool-sandbox': { http: 8085 },
  'cpu-engine': { http: 8000 },
};

/** Start order: each service's dependencies come before it. */
export const startOrder = ['cpu-engine', 'billing', 'inference-scheduler', 'orchestrator', 'retrieval', 'tool-sandbox', 'gateway'];

export const SERVED_MODEL = 'gemma-3-270m';

/** Environment of each service, from infra settings and the port plan. */
export function serviceEnv(name, ports, infra, extra = {}) {
  const grpc = (service) => `127.0.0.1:${ports[service].grpc}`;
  const common = { HTTP_HOST: '127.0.0.1', HTTP_PORT: String(ports[name].http), LOG_LEVEL: process.env.LOG_LEVEL ?? 'info', SHUTDOWN_GRACE_MS: '15000' };
  const own = {
    'cpu-engine': { MODEL_PATH: infra.MODEL_PATH, MODEL_NAME: SERVED_MODEL, ...(infra.EMBEDDING_MODEL_PATH ? { EMBEDDING_MODEL_PATH: infra.EMBEDDING_MODEL_PATH } : {}) },
    'inference-scheduler': { GRPC_PORT: String(ports['inference-scheduler'].grpc), ENGINES: `http://127.0.0.1:${ports['cpu-engine'].http}`, DATABASE_URL: infra.DATABASE_URL, KAFKA_BROKERS: infra.KAFKA_BROKERS },
    billing: { GRPC_PORT: String(ports.billing.grpc), DATABASE_URL: infra.DATABASE_URL, KAFKA_BROKERS: infra.KAFKA_BROKERS },
    orchestrator: { GRPC_PORT: String(ports.orchestrator.grpc), DATABASE_URL: infra.DATABASE_URL, INFERENCE_URL: grpc('inference-scheduler') },
    retrieval: { DATABASE_URL: infra.DATABASE_URL, REDIS_URL: infra.REDIS_URL },
    'tool-sandbox': { DATABASE_URL: infra.DATABASE_URL },
    gateway: { DATABASE_URL: infra.DATABASE_URL, REDIS_URL: infra.REDIS_URL, ORCHESTRATOR_URL: grpc('orchestrator'), BILLING_URL: grpc('billing') },
  }[name];
  return { ...common, ...own, ...(extra[name] ?? {}) };
}

export function entryPoint(name) {
  return path.join(repoRoot, 'services', name, 'dist', 'main.js');
}

export function readInfraEnv(stateDir) {
  const file = path.join(stateDir, 'infra.env');
  if (!existsSync(file)) throw new Error(`${file} is missing: start the infrastructure first (bash infra/local/infra.sh start)`);
  return Object.fromEntries(
    readFileSync(file, 'utf8').split('\n').filter((line) => line.includes('=')).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A port plan with every port free right now (for parallel test stacks). */
export async function freePorts() {
  const plan = {};
  for (const [name, kinds] of Object.entries(defaultPorts)) {
    plan[name] = {};
    for (const kind of Object.keys(kinds)) plan[name][kind] = await freePort();
  }
  return plan;
}

/** Polls `url` until it answers 200 or the process dies or time runs out. */
export async function waitReady(url, { timeoutMs = 120_000, isAlive = () => true, name = url } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive()) throw new Error(`${name} exited before it was ready`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${name} was not ready at ${url} within ${timeoutMs} ms`);
}

/** Starts one service as a child process; `detached` ones outlive this process. */
export function spawnService(name, env, { logFile, detached = false } = {}) {
  let stdio = ['ignore', 'pipe', 'pipe'];
  let fd;
  if (logFile) {
    mkdirSync(path.dirname(logFile), { recursive: true });
    fd = openSync(logFile, 'a');
    stdio = ['ignore', fd, fd];
  }
  const child = spawn(process.execPath, ['--enable-source-maps', entryPoint(name)], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio,
    detached,
  });
  if (fd !== undefined) closeSync(fd);
  if (detached) child.unref();
  return child;
}

// ------------------------------------------------------------------ CLI ----
function pidFile(stateDir, name) {
  return path.join(stateDir, 'run', `${name}.pid`);
}

function runningPid(stateDir, name) {
  const file = pidFile(stateDir, name);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8'));
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

async function startAll(stateDir) {
  const infra = readInfraEnv(stateDir);
  const ports = structuredClone(defaultPorts);
  if (process.env.GATEWAY_PORT) ports.gateway.http = Number(process.env.GATEWAY_PORT);
  for (const name of startOrder) {
    const healthUrl = `http://127.0.0.1:${ports[name].http}/readyz`;
    if (runningPid(stateDir, name)) {
      console.error(`[stack] ${name} already running`);
      continue;
    }
    const child = spawnService(name, serviceEnv(name, ports, infra), { logFile: path.join(stateDir, 'logs', `${name}.log`), detached: true });
    mkdirSync(path.join(stateDir, 'run'), { recursive: true });
    writeFileSync(pidFile(stateDir, name), String(child.pid));
    let alive = true;
    child.on('exit', () => { alive = false; });
    try {
      await waitReady(healthUrl, { name, isAlive: () => alive, timeoutMs: 180_000 });
    } catch (error) {
      const log = path.join(stateDir, 'logs', `${name}.log`);
      const tail = existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-15).join('\n') : '';
      throw new Error(`${error.message}\n--- ${log} ---\n${tail}`);
    }
    console.error(`[stack] ${name} ready on :${ports[name].http}`);
  }
  return ports;
}

async function stopAll(stateDir) {
  for (const name of [...startOrder].reverse()) {
    const pid = runningPid(stateDir, name);
    if (!pid) continue;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && runningPid(stateDir, name)) await new Promise((resolve) => setTimeout(resolve, 100));
    if (runningPid(stateDir, name)) process.kill(pid, 'SIGKILL');
    rmSync(pidFile(stateDir, name), { force: true });
    console.error(`[stack] ${name} stopped`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [command] = process.argv.slice(2);
  const stateDir = path.resolve(process.env.PLATFORM_LOCAL_DIR ?? path.join(repoRoot, '.local'));
  const actions = {
    start: async () => {
      const ports = await startAll(stateDir);
      console.log(JSON.stringify({ gatewayUrl: `http://127.0.0.1:${ports.gateway.http}` }));
    },
    stop: () => stopAll(stateDir),
    status: async () => {
      for (const name of startOrder) console.log(`${name.padEnd(20)} ${runningPid(stateDir, name) ? `running pid ${runningPid(stateDir, name)}` : 'stopped'}`);
    },
  };
  if (!actions[command]) {
    console.error('usage: node infra/local/stack.mjs start|stop|status');
    process.exit(64);
  }
  actions[command]().catch((error) => {
    console.error(`[stack] ${error.message}`);
    process.exit(1);
  });
}
