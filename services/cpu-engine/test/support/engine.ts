import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { RunningService } from '@ai-platform/platform';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '../../../..');
export const SERVICE_DIR = path.resolve(HERE, '../..');
export const MODEL = 'gemma-3-270m';

/**
 * The real GGUF: MODEL_PATH, or where infra/local/model.sh installs it.
 * Missing model = failed test with the fix in the message, never a skip.
 */
export function modelPath(): string {
  const file = process.env.MODEL_PATH ?? path.join(REPO_ROOT, '.local/models/gemma-3-270m-q4_k_m.gguf');
  if (!existsSync(file)) {
    throw new Error(`cpu-engine tests run the real model, and ${file} does not exist: run \`bash infra/local/model.sh\` (or set MODEL_PATH to the GGUF).`);
  }
  return file;
}

export const EMBEDDING_MODEL = 'all-minilm-l6-v2';

/** The all-MiniLM-L6-v2 GGUF: EMBEDDING_MODEL_PATH, or where model.sh embeddings-gguf writes it. Missing = failed test, never a skip. */
export function embeddingModelPath(): string {
  const file = process.env.EMBEDDING_MODEL_PATH ?? path.join(REPO_ROOT, '.local/models/all-minilm-l6-v2-f32.gguf');
  if (!existsSync(file)) {
    throw new Error(`cpu-engine embedding tests run the real model, and ${file} does not exist: run \`bash infra/local/model.sh embeddings-gguf\`.`);
  }
  return file;
}

/** Starts the service inside the test process on a free port. */
export async function startInProcess(env: Record<string, string> = {}): Promise<RunningService<unknown>> {
  // npm test exports the infrastructure's EMBEDDING_MODEL_PATH; an engine serves embeddings only where a test asks for them.
  delete process.env.EMBEDDING_MODEL_PATH;
  Object.assign(process.env, {
    MODEL_PATH: modelPath(),
    MODEL_NAME: MODEL,
    HTTP_PORT: '0',
    LOG_LEVEL: 'warn',
    CONTEXT_SIZE: '2048',
    SHUTDOWN_GRACE_MS: '5000',
    ...env,
  });
  const { bootstrapService } = await import('@ai-platform/platform');
  const { configSchema } = await import('../../src/config');
  const { AppModule } = await import('../../src/app.module');
  return bootstrapService({ name: 'cpu-engine', configSchema, module: AppModule }) as Promise<RunningService<unknown>>;
}

/** Compiles the service (and the libs it references) so the child-process tests run the real build. */
export function buildService(): void {
  execFileSync(path.join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-b', SERVICE_DIR], { cwd: REPO_ROOT, stdio: 'inherit' });
}

export interface ChildService {
  child: ChildProcess;
  url: string;
  logs: string[];
  exited: Promise<number | null>;
}

/** Runs `dist/main.js` as its own process (HTTP_PORT=0) and resolves once it listens. */
export async function startChild(env: Record<string, string> = {}): Promise<ChildService> {
  const child = spawn(process.execPath, [path.join(SERVICE_DIR, 'dist/main.js')], {
    cwd: REPO_ROOT,
    env: { ...process.env, MODEL_PATH: modelPath(), MODEL_NAME: MODEL, HTTP_PORT: '0', LOG_LEVEL: 'info', CONTEXT_SIZE: '2048', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.stderr!.on('data', (data: Buffer) => logs.push(data.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    void exited.then((code) => reject(new Error(`cpu-engine exited with ${code} before listening:\n${logs.join('')}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      logs.push(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; http?: string };
        if (entry.msg === 'cpu-engine listening' && entry.http) resolve(entry.http);
      } catch {
        /* not JSON */
      }
    });
  });
  return { child, url, logs, exited };
}

export async function postJson(url: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), ...init });
}

/** Reads an SSE response as its `data:` payloads, in order ([DONE] included as the string). */
export async function* sseEvents(response: Response): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const bytes of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(bytes, { stream: true });
    let boundary: number;
    while ((boundary = buffer.indexOf('\n\n')) !== -1) {
      const frame = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      if (!frame.startsWith('data: ')) throw new Error(`unexpected SSE frame: ${JSON.stringify(frame)}`);
      yield frame.slice('data: '.length);
    }
  }
  if (buffer.trim()) throw new Error(`trailing bytes after the last SSE frame: ${JSON.stringify(buffer)}`);
}

export async function collectSse(response: Response): Promise<string[]> {
  const events: string[] = [];
  for await (const event of sseEvents(response)) events.push(event);
  return events;
}

/** The value of one Prometheus sample (labels matched as a subset), or undefined. */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([^{\s]+)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => present[key] === value)) return Number(match[3]);
  }
  return undefined;
}

export async function scrape(baseUrl: string): Promise<string> {
  return (await fetch(`${baseUrl}/metrics`)).text();
}

/** Polls until `check` passes (or throws its last error after `timeoutMs`). */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 20_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}

/** A response's JSON body, loosely typed (assertions check its shape). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function json(response: Response | Promise<Response>): Promise<any> {
  return (await response).json();
}
