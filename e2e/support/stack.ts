import { execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
// @ts-expect-error plain ESM module shared with `npm start`
import { freePorts, repoRoot, serviceEnv, spawnService, startOrder, waitReady, SERVED_MODEL } from '../../infra/local/stack.mjs';

export type ServiceName = 'gateway' | 'orchestrator' | 'inference-scheduler' | 'billing' | 'retrieval' | 'tool-sandbox' | 'cpu-engine';
type Ports = Record<ServiceName, { http: number; grpc?: number }>;

export interface Credentials {
  gatewayUrl: string;
  apiKey: string;
  tenantId: string;
  userId: string;
}

export const MODEL: string = SERVED_MODEL;

function infra(): Record<string, string> {
  const names = ['DATABASE_URL', 'REDIS_URL', 'KAFKA_BROKERS', 'MODEL_PATH'];
  const missing = names.filter((name) => !process.env[name]);
  if (missing.length) throw new Error(`${missing.join(', ')} not set: run e2e tests with npm test`);
  return Object.fromEntries(names.map((name) => [name, process.env[name]!]));
}

/**
 * The whole platform as separate processes on free ports, for one test file.
 * Each service's output is kept so a failure can show it.
 */
export class TestStack {
  private readonly processes = new Map<ServiceName, ChildProcess>();
  private readonly output = new Map<ServiceName, string[]>();

  private constructor(readonly ports: Ports, private readonly env: Record<string, string>, private readonly extra: Partial<Record<ServiceName, Record<string, string>>>) {}

  static async start(extra: Partial<Record<ServiceName, Record<string, string>>> = {}): Promise<TestStack> {
    // Each stack's gateways get their own job queues, so no other stack's worker takes their jobs.
    const isolated = { ...extra, gateway: { QUEUE_PREFIX: `test-${randomUUID().slice(0, 8)}`, ...extra.gateway } };
    const stack = new TestStack((await freePorts()) as Ports, infra(), isolated);
    for (const name of startOrder as ServiceName[]) await stack.startService(name);
    return stack;
  }

  get gatewayUrl(): string {
    return `http://127.0.0.1:${this.ports.gateway.http}`;
  }

  url(name: ServiceName, pathname: string): string {
    return `http://127.0.0.1:${this.ports[name].http}${pathname}`;
  }

  async startService(name: ServiceName, overrides: Record<string, string> = {}): Promise<void> {
    const child: ChildProcess = spawnService(name, { ...serviceEnv(name, this.ports, this.env, this.extra), LOG_LEVEL: 'info', ...overrides });
    const lines: string[] = this.output.get(name) ?? [];
    this.output.set(name, lines);
    const collect = (chunk: Buffer) => {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      if (lines.length > 2000) lines.splice(0, lines.length - 2000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    this.processes.set(name, child);
    try {
      await waitReady(this.url(name, '/readyz'), { name, isAlive: () => child.exitCode === null && child.signalCode === null, timeoutMs: 120_000 });
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${lines.slice(-20).join('\n')}`);
    }
  }

  /**
   * Waits until the gateway lists `model`. With `generate`, also until a one-token
   * completion succeeds: the gateway caches the model list for a few seconds, so a
   * listed model says little about an engine that was just restarted. The probe is
   * billed to the caller, so tests that count a tenant's usage leave it off.
   */
  async waitUntilServing(apiKey: string, model = MODEL, options: { generate?: boolean } = {}): Promise<void> {
    await waitFor(async () => {
      const response = await fetch(`${this.gatewayUrl}/v1/models`, { headers: { authorization: `Bearer ${apiKey}` } }).catch(() => undefined);
      if (!response?.ok) return undefined;
      const body = (await response.json()) as { data: Array<{ id: string }> };
      if (!body.data.some((entry) => entry.id === model)) return undefined;
      if (!options.generate) return true;
      const probe = await fetch(`${this.gatewayUrl}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'ping' }], max_tokens: 1 }),
      }).catch(() => undefined);
      await probe?.arrayBuffer().catch(() => undefined);
      return probe?.ok ? true : undefined;
    }, `the gateway to serve ${model}`);
  }

  /** Sends `signal` and resolves with the exit code once the process is gone. */
  async kill(name: ServiceName, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const child = this.processes.get(name);
    if (!child || child.exitCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill(signal);
    return exited;
  }

  /** Writes the recent output of every service to stderr, to explain a failed test. */
  printLogs(lines = 30): void {
    for (const [name, output] of this.output) process.stderr.write(`--- ${name} ---\n${output.slice(-lines).join('\n')}\n`);
  }

  logs(name: ServiceName): string[] {
    return this.output.get(name) ?? [];
  }

  /** A new tenant with a user and an API key, created by the gateway's own seeding code. */
  createTenant(): Credentials {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'creds-')), 'credentials.json');
    execFileSync(process.execPath, [path.join(repoRoot, 'services/gateway/dist/cli/seed-dev.js'), file, this.gatewayUrl], {
      env: { ...process.env, DATABASE_URL: this.env.DATABASE_URL, DEV_TENANT_ID: `tenant_${randomUUID().slice(0, 12)}`, DEV_USER_ID: `user_${randomUUID().slice(0, 12)}` },
      stdio: 'pipe',
    });
    return JSON.parse(readFileSync(file, 'utf8'));
  }

  async stop(): Promise<void> {
    for (const name of [...(startOrder as ServiceName[])].reverse()) await this.kill(name, 'SIGTERM');
  }
}

export async function waitFor<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}
