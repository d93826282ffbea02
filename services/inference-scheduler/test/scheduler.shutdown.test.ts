import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PRICES } from '@ai-platform/pricing';
import { events } from '@ai-platform/contracts';
import { GrpcStatus } from '@ai-platform/platform';
import { FakeVllm } from './fixtures/fake-vllm';
import { grpcFailure, ids, requireInfra, schedulerClient, startScheduler, UsageCollector, waitFor } from './fixtures/harness';

// Shutdown (SIGTERM) while a stream is open: the stream gets its grace period,
// is then ended with UNAVAILABLE, the engine request is aborted, and the
// call's usage event still reaches Kafka before the process stops.
describe('inference-scheduler shutdown', () => {
  const infra = requireInfra();
  const MODEL = DEFAULT_PRICES[0]!.model;
  const engine = new FakeVllm(MODEL);
  let usage: UsageCollector;

  beforeAll(async () => {
    await engine.start();
    usage = await new UsageCollector(infra.kafkaBrokers).start();
  });

  afterAll(async () => {
    await usage?.stop();
    await engine.stop();
  });

  it('drains an open stream, aborts its engine request and still publishes its usage event', async () => {
    const service = await startScheduler({
      ENGINES: engine.url,
      DATABASE_URL: infra.databaseUrl,
      KAFKA_BROKERS: infra.kafkaBrokers,
      SHUTDOWN_GRACE_MS: '300',
    });
    const client = schedulerClient(service);
    engine.behavior = { kind: 'stream', tokens: 4_000, delayMs: 10 };
    const who = ids('shutdown');
    let deltas = 0;
    let shuttingDown: Promise<void> | undefined;
    const failure = await grpcFailure(async () => {
      for await (const response of client.generate({ model: MODEL, messages: [{ role: 'user', content: 'go on' }], sampling: { maxTokens: 4_000 } }, { context: who })) {
        if (response.event.case === 'delta' && ++deltas === 2) shuttingDown = service.shutdown('SIGTERM (test)');
      }
    });
    await shuttingDown;
    client.close();
    expect(failure, failure.details).toMatchObject({ code: GrpcStatus.UNAVAILABLE });
    expect(failure.code).toBe(GrpcStatus.UNAVAILABLE);
    const sent = engine.requests.find((request) => request.headers['x-request-id'] === who.requestId)!;
    await waitFor('engine request to be aborted', () => sent.aborted, 5_000);
    const { event } = await usage.eventFor(who.requestId);
    expect(event.status).toBe(events.UsageStatus.ABORTED);
    expect(event.outputTokens).toBeGreaterThanOrEqual(2);
  });
});
