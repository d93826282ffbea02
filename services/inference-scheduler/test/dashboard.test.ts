import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '@ai-platform/platform';
import type { SchedulerConfig } from '../src/config';
import { FakeVllm } from './fixtures/fake-vllm';
import { collect, ids, requireInfra, schedulerClient, startScheduler } from './fixtures/harness';

// Every metric the Grafana dashboard and the alert rules query must exist on
// the running service's /metrics, so a rename cannot silently blank a panel.
const root = path.resolve(import.meta.dirname, '../../..');
const dashboard = JSON.parse(readFileSync(path.join(root, 'infra/grafana/inference-scheduler.json'), 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
const rules = readFileSync(path.join(root, 'infra/prometheus/inference-scheduler.rules.yaml'), 'utf8');

/** Metric names in PromQL (ours all start with inference_), histogram suffixes folded onto the family. */
function metricNames(expressions: string[]): string[] {
  const names = expressions.flatMap((expr) => expr.match(/\binference_[a-z_]+/g) ?? []);
  return [...new Set(names.map((name) => name.replace(/_(bucket|sum|count)$/, '')))].sort();
}

describe('dashboard and alert rules', () => {
  const infra = requireInfra();
  const engine = new FakeVllm('dash-model');
  let service: RunningService<SchedulerConfig>;

  beforeAll(async () => {
    await engine.start();
    service = await startScheduler({ ENGINES: engine.url, DATABASE_URL: infra.databaseUrl, KAFKA_BROKERS: infra.kafkaBrokers, ENGINE_POLL_INTERVAL_MS: '200' });
    // One call, so labelled series exist too.
    const client = schedulerClient(service);
    await collect(client.generate({ model: 'dash-model', messages: [{ role: 'user', content: 'hi' }], sampling: { maxTokens: 3 } }, { context: ids('dashboard') }));
    client.close();
  });

  afterAll(async () => {
    await service?.shutdown('test done');
    await engine.stop();
  });

  it('queries only metrics the service exposes', async () => {
    const exposition = await (await fetch(`${service.httpUrl}/metrics`)).text();
    const exposed = new Set([...exposition.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]!));
    const queried = metricNames([...dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr)), ...[...rules.matchAll(/expr: (.+)/g)].map((match) => match[1]!)]);
    expect(queried.length).toBeGreaterThan(15);
    expect(queried.filter((name) => !exposed.has(name))).toEqual([]);
  });
});
