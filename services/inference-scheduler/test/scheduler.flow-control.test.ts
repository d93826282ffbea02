import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GrpcStatus, metricsRegistry, type RunningService } from '@ai-platform/platform';
import { common } from '@ai-platform/contracts';
import type { SchedulerConfig } from '../src/config';
import { EnginePool } from '../src/engines/engine-pool';
import { FlowController } from '../src/flow/flow-controller';
import { FakeVllm } from './fixtures/fake-vllm';
import { collect, ids, requireInfra, schedulerClient, startScheduler, waitFor, type InferenceClient } from './fixtures/harness';

// Admission control, priority lanes and tenant fairness in front of one fake
// engine that counts as full at two requests (ENGINE_MAX_LOAD=2). Each token
// takes 150 ms, so a request's length is set by its max_tokens.
const MODEL = 'flow-model';
const messages = [{ role: 'user', content: 'Go.' }];

async function failure(work: Promise<unknown>): Promise<{ code: number; details: string; retryAfter?: string }> {
  try {
    await work;
  } catch (error) {
    const { code, details, metadata } = error as { code: number; details: string; metadata?: { get(key: string): unknown[] } };
    const retryAfter = metadata?.get('retry-after')[0];
    return { code, details, ...(retryAfter !== undefined ? { retryAfter: String(retryAfter) } : {}) };
  }
  throw new Error('expected the call to fail');
}

describe('inference-scheduler flow control', () => {
  const infra = requireInfra();
  const engine = new FakeVllm(MODEL, 4096);
  let service: RunningService<SchedulerConfig>;
  let client: InferenceClient;
  let flow: FlowController;

  beforeAll(async () => {
    await engine.start();
    engine.behavior = { kind: 'stream', tokens: 64, delayMs: 150 };
    service = await startScheduler({
      ENGINES: engine.url,
      DATABASE_URL: infra.databaseUrl,
      KAFKA_BROKERS: infra.kafkaBrokers,
      ENGINE_POLL_INTERVAL_MS: '200',
      ENGINE_MAX_LOAD: '2',
      TTFT_TARGET_PREMIUM_MS: '10000',
      TTFT_TARGET_STANDARD_MS: '1200',
      TTFT_TARGET_BATCH_MS: '10000',
    });
    client = schedulerClient(service);
    flow = service.app.get(FlowController);
  });

  afterAll(async () => {
    client?.close();
    await service?.shutdown('test done');
    await engine.stop();
  });

  // Nothing may stay behind: queues, granted-but-unused slots, in-flight counts, breakers.
  afterEach(async () => {
    await waitFor('in-flight requests to end', () => service.app.get(EnginePool).engines.every((e) => e.inFlight === 0) && engine.running === 0, 10_000);
    await waitFor('admitted calls to finish', () => flow.runningCalls() === 0 && flow.callsAwaitingFirstToken() === 0, 5_000, 10);
    expect(flow.depth()).toBe(0);
    expect(service.app.get(EnginePool).engines.map((e) => [e.batchInFlight, e.pendingPrefillTokens])).toEqual([[0, 0]]);
    expect(flow.reservedSlots()).toBe(0);
    expect(service.app.get(EnginePool).engines.map((e) => e.breaker.state)).toEqual(['closed']);
  });

  const generate = (who: ReturnType<typeof ids>, priority: common.Priority, maxTokens: number, signal?: AbortSignal) =>
    collect(client.generate({ model: MODEL, messages, priority, sampling: { maxTokens } }, { context: who, signal }));
  const busy = async (count: number) => {
    const calls = Array.from({ length: count }, () => generate(ids('busy'), common.Priority.INTERACTIVE_PREMIUM, 16));
    await waitFor('the engine to be full', () => engine.running >= count, 5_000, 10);
    return calls;
  };

  it('queues requests beyond the engine capacity and admits them as slots free', async () => {
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, engine.running)), 5);
    const results = await Promise.all(Array.from({ length: 5 }, () => generate(ids('queued'), common.Priority.INTERACTIVE_PREMIUM, 2)));
    clearInterval(sampler);
    for (const responses of results) expect(responses.at(-1)!.event.case).toBe('completion');
    expect(peak).toBeLessThanOrEqual(2);
  });

  it('refuses an interactive request that cannot start within its deadline with RESOURCE_EXHAUSTED and a retry-after hint', async () => {
    const running = await busy(2);
    const refused = await failure(generate(ids('late'), common.Priority.INTERACTIVE_STANDARD, 2));
    // Refused while both long requests were still running: it did not wait for a slot.
    expect(engine.running).toBe(2);
    expect(refused.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(refused.details).toMatch(/interactive_standard/);
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
    await Promise.all(running);
  });

  it('sheds queued and new batch requests with UNAVAILABLE while a premium request waits, and serves the premium one', async () => {
    const running = await busy(2);
    const batch = failure(generate(ids('batch'), common.Priority.BATCH, 2));
    await waitFor('the batch request to queue', () => flow.depth('batch') === 1, 5_000, 10);
    const premium = generate(ids('premium'), common.Priority.INTERACTIVE_PREMIUM, 2);
    const shed = await batch;
    expect(shed.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(shed.details).toMatch(/batch request shed/);
    expect(Number(shed.retryAfter)).toBeGreaterThanOrEqual(1);
    const late = await failure(generate(ids('batch-2'), common.Priority.BATCH, 2));
    expect(late.code).toBe(GrpcStatus.UNAVAILABLE);
    expect((await premium).at(-1)!.event.case).toBe('completion');
    await Promise.all(running);
    const shedMetric = (await metricsRegistry.getSingleMetric('inference_shed_total')!.get()).values;
    expect(shedMetric.find((value) => value.labels.priority === 'batch' && value.labels.reason === 'shed_batch')?.value).toBeGreaterThanOrEqual(2);
  });

  it('serves tenants in turn: a noisy tenant with many queued requests does not hold back a quiet one', async () => {
    const finished: string[] = [];
    const noisy = ids('noisy');
    const quiet = ids('quiet');
    const track = (who: ReturnType<typeof ids>, label: string) => generate(who, common.Priority.INTERACTIVE_PREMIUM, 2).then(() => finished.push(label));
    const noisyCalls = Array.from({ length: 8 }, () => track({ ...noisy, requestId: `${noisy.requestId}-${Math.random()}` }, 'noisy'));
    await waitFor('the noisy tenant to queue', () => flow.depth('interactive_premium') >= 5, 5_000, 10);
    const quietCall = track(quiet, 'quiet');
    await Promise.all([...noisyCalls, quietCall]);
    // FIFO would serve the quiet tenant 9th; round robin across tenants serves it within the next round.
    expect(finished.indexOf('quiet')).toBeLessThanOrEqual(4);
  });

  it('keeps headroom for interactive calls: batch holds at most its share of the engine while a premium call goes straight on', async () => {
    // ENGINE_MAX_LOAD=2 and BATCH_MAX_ENGINE_SHARE=0.5: one batch call at a time on the engine.
    let peakBatch = 0;
    const pool = service.app.get(EnginePool);
    const sampler = setInterval(() => (peakBatch = Math.max(peakBatch, ...pool.engines.map((e) => e.batchInFlight))), 5);
    const batch = Array.from({ length: 2 }, () => generate(ids('batch'), common.Priority.BATCH, 4));
    await waitFor('one batch call to run and one to queue', () => engine.running === 1 && flow.depth('batch') === 1, 5_000, 10);
    const premium = generate(ids('premium'), common.Priority.INTERACTIVE_PREMIUM, 2);
    await waitFor('the premium call to run beside the batch call', () => engine.running === 2, 5_000, 10);
    expect(flow.depth('batch')).toBe(1);
    expect((await premium).at(-1)!.event.case).toBe('completion');
    for (const responses of await Promise.all(batch)) expect(responses.at(-1)!.event.case).toBe('completion');
    clearInterval(sampler);
    expect(peakBatch).toBe(1);
  });

  it('caps a tenant at its share while another tenant waits: the quiet tenant gets the next free slot', async () => {
    const noisy = ids('noisy-cap');
    const quiet = ids('quiet-cap');
    const before = engine.requests.length;
    const call = (who: ReturnType<typeof ids>, label: string) => generate({ ...who, requestId: `${label}-${Math.random()}` }, common.Priority.INTERACTIVE_PREMIUM, 2);
    const first = [call(noisy, 'noisy'), call(noisy, 'noisy')]; // work-conserving: both slots
    await waitFor('the noisy tenant to hold both slots', () => flow.runningCalls(MODEL, noisy.tenantId) === 2, 5_000, 10);
    const queued = [call(noisy, 'noisy-late'), call(noisy, 'noisy-late')];
    await waitFor('the noisy calls to queue', () => flow.depth('interactive_premium') === 2, 5_000, 10);
    const quietCall = call(quiet, 'quiet');
    await Promise.all([...first, ...queued, quietCall]);
    // The order in which the engine received them: the quiet call right after the first two.
    const order = engine.requests.slice(before).map((request) => String(request.headers['x-request-id']).split('-0.')[0]);
    expect(order).toEqual(['noisy', 'noisy', 'quiet', 'noisy-late', 'noisy-late']);
  });

  it('removes a cancelled request from the queue without reaching the engine', async () => {
    const running = await busy(2);
    const before = engine.requests.length;
    const controller = new AbortController();
    const cancelled = failure(generate(ids('cancel'), common.Priority.INTERACTIVE_PREMIUM, 2, controller.signal));
    await waitFor('the request to queue', () => flow.depth('interactive_premium') === 1, 5_000, 10);
    controller.abort();
    expect((await cancelled).code).toBe(GrpcStatus.CANCELLED);
    await waitFor('the queue to empty', () => flow.depth() === 0, 5_000, 10);
    await Promise.all(running);
    expect(engine.requests.length - before).toBe(0);
  });
});
