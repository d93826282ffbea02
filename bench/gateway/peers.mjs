// The two peer gateways of the comparison, each one hop between the client and the same engine
// fixture our platform uses: LiteLLM proxy (Python) and the Portkey gateway (Node). Installed by
// bench/gateway/peers/install.sh into the git-ignored .local/tools/, never into package.json.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, repoRoot, waitReady } from '../../infra/local/stack.mjs';

const litellmBin = path.join(repoRoot, '.local/tools/litellm-venv/bin/litellm');
const litellmPython = path.join(repoRoot, '.local/tools/litellm-venv/bin/python');
const portkeyDir = path.join(repoRoot, '.local/tools/bench-node/node_modules/@portkey-ai/gateway');
const LITELLM_MASTER_KEY = 'sk-bench-litellm';

/** The environment minus the platform's own infrastructure, so a peer never picks it up (LiteLLM
 * reads DATABASE_URL and REDIS_* by itself, and treats even an empty DATABASE_URL as "use a DB"). */
function peerEnv(extra) {
  const env = { ...process.env, ...extra };
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'KAFKA_BROKERS', 'REDIS_HOST', 'REDIS_PORT', 'REDIS_PASSWORD']) delete env[name];
  return env;
}

const missing = (what) => new Error(`${what} is not installed: bash bench/gateway/peers/install.sh`);

function tail(child) {
  const lines = [];
  const keep = (chunk) => { lines.push(...chunk.toString().split('\n').filter(Boolean)); if (lines.length > 40) lines.splice(0, lines.length - 40); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return lines;
}

async function started(name, child, url, timeoutMs) {
  const lines = tail(child);
  try {
    await waitReady(url, { name, timeoutMs, isAlive: () => child.exitCode === null && child.signalCode === null });
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${error.message}\n${lines.join('\n')}`);
  }
}

/**
 * LiteLLM proxy with bench/gateway/peers/litellm-config.yaml: no database, master key only,
 * errors-only logging, `workers` Uvicorn workers (LiteLLM's default and its recommendation is one
 * per container, scaled out by running more containers).
 */
export async function startLiteLLM(engineUrl, { workers = 1 } = {}) {
  if (!existsSync(litellmBin)) throw missing('LiteLLM');
  const port = await freePort();
  const child = spawn(litellmBin, ['--config', path.join(repoRoot, 'bench/gateway/peers/litellm-config.yaml'), '--host', '127.0.0.1', '--port', String(port), '--num_workers', String(workers)], {
    cwd: repoRoot,
    env: peerEnv({
      BENCH_ENGINE_API_BASE: `${engineUrl}/v1`,
      LITELLM_MASTER_KEY,
      LITELLM_LOG: 'ERROR', // also turns off Uvicorn's per-request access log
      LITELLM_LOCAL_MODEL_COST_MAP: 'True', // the cost map ships in the wheel; do not fetch it
      NO_DOCS: 'True',
      NO_REDOC: 'True',
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await started('litellm', child, `http://127.0.0.1:${port}/health/liveliness`, 120_000);
  const version = spawnSync(litellmPython, ['-c', 'import importlib.metadata as m; print(m.version("litellm"))'], { encoding: 'utf8' }).stdout.trim();
  return { name: 'litellm', version, workers, url: `http://127.0.0.1:${port}`, headers: { authorization: `Bearer ${LITELLM_MASTER_KEY}` }, child };
}

/**
 * Portkey's open-source gateway (its npm package's own server, `build/start-server.js`, headless:
 * no UI, no log stream). The upstream is chosen per request by headers, as its README shows for
 * self-hosted OpenAI-compatible engines: provider `openai` and a custom host (127.0.0.1 is in its
 * default trusted custom hosts).
 */
export async function startPortkey(engineUrl) {
  const entry = path.join(portkeyDir, 'build/start-server.js');
  if (!existsSync(entry)) throw missing('@portkey-ai/gateway');
  const port = await freePort();
  const child = spawn(process.execPath, [entry, `--port=${port}`, '--headless'], {
    cwd: portkeyDir, env: peerEnv({ NODE_ENV: 'production' }), stdio: ['ignore', 'pipe', 'pipe'],
  });
  // It has no health route; its root answers once it listens.
  await started('portkey', child, `http://127.0.0.1:${port}/`, 60_000);
  const versionOf = (dir) => JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
  return {
    name: 'portkey', version: versionOf(portkeyDir), honoNodeServer: versionOf(path.join(portkeyDir, '../../@hono/node-server')), url: `http://127.0.0.1:${port}`, child,
    headers: { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${engineUrl}/v1`, authorization: 'Bearer fixture-needs-no-key' },
  };
}


/** The pid and every descendant (LiteLLM with several workers forks them). */
export function processTree(pid) {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    try {
      for (const task of readFileSync(`/proc/${pids[i]}/task/${pids[i]}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) pids.push(Number(task));
    } catch { /* gone */ }
  }
  return pids;
}

/** Peak resident memory (VmHWM) in MiB of one process, or null when it is gone. */
export function peakRssMiB(pid) {
  try {
    return Math.round(Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024);
  } catch {
    return null;
  }
}
