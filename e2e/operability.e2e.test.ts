import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM module shared with `npm start`
import { entryPoint, serviceEnv } from '../infra/local/stack.mjs';
import { MODEL, waitFor, type ServiceName } from './support/stack';
import { useStack } from './support/suite';

const SERVICES: ServiceName[] = ['gateway', 'orchestrator', 'inference-scheduler', 'billing', 'retrieval', 'tool-sandbox', 'cpu-engine'];

/** A variable each service cannot start without. */
const REQUIRED: Record<ServiceName, string> = {
  gateway: 'ORCHESTRATOR_URL', orchestrator: 'INFERENCE_URL', 'inference-scheduler': 'KAFKA_BROKERS', billing: 'DATABASE_URL',
  retrieval: 'DATABASE_URL', 'tool-sandbox': 'DATABASE_URL', 'cpu-engine': 'MODEL_PATH',
};

const suite = useStack();

describe('every service is operable', () => {
  it.each(SERVICES)('%s serves liveness, readiness and Prometheus metrics', async (service) => {
    expect((await fetch(suite.stack.url(service, '/healthz'))).status).toBe(200);
    const ready = await fetch(suite.stack.url(service, '/readyz'));
    expect(ready.status).toBe(200);
    expect((await ready.json()).status).toBe('ready');
    const metrics = await (await fetch(suite.stack.url(service, '/metrics'))).text();
    expect(metrics).toContain('process_cpu_user_seconds_total');
    expect(metrics).toContain('platform_inflight_streams');
  });

  it.each(SERVICES)('%s refuses to start on bad config and names the variable', async (service) => {
    const env = { ...process.env, ...serviceEnv(service, suite.stack.ports, process.env, {}), HTTP_PORT: 'not-a-port', [REQUIRED[service]]: '' };
    const child = spawn(process.execPath, [entryPoint(service)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(78);
    expect(output).toContain('HTTP_PORT');
    expect(output).toContain(REQUIRED[service]);
  });

  it('carries one trace id from the caller through gateway, orchestrator and scheduler logs', async () => {
    const traceId = randomBytes(16).toString('hex');
    const completion = await suite.client.chat.completions.create(
      { model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 },
      { headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` } },
    );
    expect(completion.usage!.completion_tokens).toBeGreaterThan(0);
    for (const service of ['gateway', 'orchestrator', 'inference-scheduler'] as ServiceName[]) {
      const line = await waitFor(async () => suite.stack.logs(service).find((entry) => entry.includes(traceId)), `${service} logging trace ${traceId}`, 10_000);
      const parsed = JSON.parse(line);
      expect(parsed).toMatchObject({ service, trace_id: traceId });
      expect(typeof parsed.span_id).toBe('string');
    }
    // Requests also carry the caller's tenant into the downstream logs.
    expect(suite.stack.logs('orchestrator').some((entry) => entry.includes(traceId) && entry.includes(suite.tenant.tenantId))).toBe(true);
  });
});
