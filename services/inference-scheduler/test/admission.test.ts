import { afterEach, describe, expect, it } from 'vitest';
import { GrpcStatus, type Logger } from '@ai-platform/platform';
import { configSchema, type SchedulerConfig } from '../src/config';
import { Engine } from '../src/engines/engine';
import type { EnginePool } from '../src/engines/engine-pool';
import { FairQueue } from '../src/flow/fair-queue';
import { FlowController, type Admission } from '../src/flow/flow-controller';
import { promptShape } from '../src/flow/headroom';
import type { Lane } from '../src/flow/lanes';
import { beginPrefill, prefillWaitMs } from '../src/flow/prefill';
import { fairShare } from '../src/flow/tenant-running';
import type { ProviderRegistry } from '../src/providers/provider-registry';

// Admission in isolation: a FlowController over hand-made engines (no HTTP, no
// gRPC), so every decision is checked exactly and without timing.
const MODEL = 'm';
const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined } as unknown as Logger;

function config(env: Record<string, string> = {}): SchedulerConfig {
  return configSchema.parse({ HTTP_PORT: '0', ENGINES: 'http://e:1', DATABASE_URL: 'postgres://x', KAFKA_BROKERS: 'k:9092', ENGINE_MAX_LOAD: '4', ...env });
}

function engine(id: string): Engine {
  const result = new Engine(id, `http://${id}`);
  result.healthy = true;
  result.models = [{ id: MODEL }];
  result.scrapedAt = Date.now() + 3_600_000; // fresh metrics for the whole test
  result.scraped = { running: 0, waiting: 0 };
  return result;
}

/** A FlowController over `engines`; `run` admits a call and puts it on the first engine, returning its end. */
function harness(env: Record<string, string> = {}, engines = [engine('a')]) {
  const listeners: Array<(released: boolean) => void> = [];
  const pool = { candidates: () => engines, onCapacityChange: (listener: (released: boolean) => void) => listeners.push(listener) } as unknown as EnginePool;
  const providers = { overflowFor: () => undefined } as unknown as ProviderRegistry;
  const flow = new FlowController(config(env), quiet, pool, providers);
  const ongoing = new Set<() => void>();
  const admit = (lane: Lane, tenantId: string, signal = new AbortController().signal) => flow.admit({ model: MODEL, lane, tenantId, signal });
  /** Takes the admitted call onto engine `on` (as GenerationService does); returns the call's end. */
  const start = (admission: Admission, lane: Lane, on = engines[0]!, firstToken = true) => {
    on.acquire(lane === 'batch');
    admission.started();
    if (firstToken) admission.firstToken();
    const end = () => {
      if (!ongoing.delete(end)) return;
      on.release(lane === 'batch');
      for (const listener of listeners) listener(true);
      admission.finished();
    };
    ongoing.add(end);
    return end;
  };
  const endAll = () => [...ongoing].forEach((end) => end());
  return { flow, engines, admit, start, endAll };
}

/** Whether a promise has settled (after the microtasks queued so far). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(() => (done = true), () => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

let cleanup: (() => void) | undefined;
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
});

/** After every test: nothing queued, reserved or counted as running. */
function expectNoLeaks(flow: FlowController, engines: Engine[]) {
  expect(flow.depth()).toBe(0);
  expect(flow.reservedSlots()).toBe(0);
  expect(flow.runningCalls()).toBe(0);
  expect(flow.callsAwaitingFirstToken()).toBe(0);
  for (const e of engines) expect([e.inFlight, e.batchInFlight, e.pendingPrefillTokens]).toEqual([0, 0, 0]);
}

describe('headroom for interactive lanes', () => {
  it('lets batch hold only its share of an engine and keeps the rest for interactive calls', async () => {
    const h = harness({ BATCH_MAX_ENGINE_SHARE: '0.5' });
    cleanup = h.endAll;
    h.start(await h.admit('batch', 't1'), 'batch');
    h.start(await h.admit('batch', 't1'), 'batch');
    const third = h.admit('batch', 't1');
    expect(await settled(third)).toBe(false); // 2 of 4 slots free, but batch's share (2) is used
    expect(h.flow.depth('batch')).toBe(1);
    const premium = h.admit('interactive_premium', 't2');
    expect(await settled(premium)).toBe(true); // straight on: the reserved headroom
    const endPremium = h.start(await premium, 'interactive_premium');
    endPremium();
    expect(h.flow.depth('batch')).toBe(1); // a premium slot freeing does not give batch more than its share
    h.endAll(); // a batch call ends: the queued one may go
    const endThird = h.start(await third, 'batch');
    endThird();
    expectNoLeaks(h.flow, h.engines);
  });

  it('with a share of 1 batch may fill the engine', async () => {
    const h = harness({ BATCH_MAX_ENGINE_SHARE: '1' });
    cleanup = h.endAll;
    for (let i = 0; i < 4; i++) h.start(await h.admit('batch', 't1'), 'batch');
    expect(h.engines[0]!.batchInFlight).toBe(4);
    h.endAll();
    expectNoLeaks(h.flow, h.engines);
  });

  it('admits an interactive call only where its prefill can end in time (backlog + its uncached tokens), else refuses it at once', async () => {
    // 1000 tokens/s; premium target 2000 ms: prefill must end within 1800 ms. The prompt is ~100 tokens (100 ms).
    const h = harness({ ENGINE_PREFILL_THROUGHPUT: '1000', TTFT_TARGET_PREMIUM_MS: '2000' });
    cleanup = h.endAll;
    const [e] = h.engines;
    const prompt = promptShape([{ role: 'user', content: 'word '.repeat(79) }]);
    expect(prompt.tokens).toBe(100);
    const premium = (tenant: string) => h.flow.admit({ model: MODEL, lane: 'interactive_premium', tenantId: tenant, signal: new AbortController().signal, prompt });
    const queued = beginPrefill(e!, 1_750);
    expect(prefillWaitMs(e!, 1000)).toBe(1_750);
    const refused = await premium('t1').then(() => undefined, (error: { code: number; trailers?: Record<string, string> }) => error);
    expect(refused?.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED); // 1750 + 100 > 1800: no wait in the queue either
    expect(refused?.trailers?.['retry-after']).toBeDefined();
    expect(h.flow.depth()).toBe(0);
    e!.prefixIndex.record(prompt.blocks.forBlockSize(e!.blockSize)); // the engine now has the prompt cached: 1750 ms
    h.start(await premium('t1'), 'interactive_premium');
    queued();
    h.endAll();
    expectNoLeaks(h.flow, h.engines);
  });

  it('holds batch back from an engine whose prefill backlog would exceed its share of the premium budget, and admits it when that drains', async () => {
    // Batch may leave at most 0.5 × 1800 ms = 900 ms of prefill on an engine.
    const h = harness({ ENGINE_PREFILL_THROUGHPUT: '1000', TTFT_TARGET_PREMIUM_MS: '2000', BATCH_MAX_ENGINE_SHARE: '0.5' });
    cleanup = h.endAll;
    const [e] = h.engines;
    const prompt = promptShape([{ role: 'user', content: 'word '.repeat(79) }]);
    const firstToken = beginPrefill(e!, 850);
    const batch = h.flow.admit({ model: MODEL, lane: 'batch', tenantId: 't1', signal: new AbortController().signal, prompt });
    expect(await settled(batch)).toBe(false); // 850 + 100 > 900
    expect(h.flow.depth('batch')).toBe(1);
    firstToken();
    h.flow.pump(); // GenerationService pumps at every first token
    h.start(await batch, 'batch');
    h.endAll();
    expectNoLeaks(h.flow, h.engines);
  });
});

describe('per-tenant running caps', () => {
  it('lets a tenant exceed its share only while nobody else waits, then serves the tenant with the fewest running calls first', async () => {
    const h = harness({ BATCH_MAX_ENGINE_SHARE: '1' });
    cleanup = h.endAll;
    const noisyEnds = [];
    for (let i = 0; i < 4; i++) noisyEnds.push(h.start(await h.admit('interactive_standard', 'noisy'), 'interactive_standard')); // work-conserving: all 4 slots
    expect(h.flow.runningCalls(MODEL, 'noisy')).toBe(4);
    const noisyQueued = [h.admit('interactive_standard', 'noisy'), h.admit('interactive_standard', 'noisy')];
    const quietCall = h.admit('interactive_standard', 'quiet');
    expect(h.flow.depth('interactive_standard')).toBe(3);
    noisyEnds[0]!(); // one slot frees: the quiet tenant (0 running) gets it, though the noisy one queued first
    expect(await settled(quietCall)).toBe(true);
    expect(await settled(Promise.race(noisyQueued))).toBe(false);
    const endQuiet = h.start(await quietCall, 'interactive_standard');
    noisyEnds[1]!(); // nobody else waits now: the noisy tenant may use the slot
    h.start(await noisyQueued[0]!, 'interactive_standard');
    endQuiet();
    h.start(await noisyQueued[1]!, 'interactive_standard');
    h.endAll();
    expectNoLeaks(h.flow, h.engines);
  });

  it('holds a tenant at its share back while another tenant\'s admitted call still waits for its first token', async () => {
    const h = harness({ BATCH_MAX_ENGINE_SHARE: '1' }, [engine('a'), engine('b')]); // 8 slots: shares of 4 for two tenants
    cleanup = h.endAll;
    const quietEnd = h.start(await h.admit('interactive_standard', 'quiet'), 'interactive_standard', h.engines[1], false); // in prefill
    for (let i = 0; i < 4; i++) h.start(await h.admit('interactive_standard', 'noisy'), 'interactive_standard');
    const fifth = h.admit('interactive_standard', 'noisy');
    expect(await settled(fifth)).toBe(false); // 3 slots free, but the noisy tenant is at its share and the quiet call waits
    quietEnd(); // the quiet call is done: nobody else waits, the noisy tenant may use the free slots
    h.start(await fifth, 'interactive_standard');
    h.endAll();
    expectNoLeaks(h.flow, h.engines);
  });

  it('gives each active tenant an equal share of the slots, at least one', () => {
    expect(fairShare(64, 5)).toBe(13);
    expect(fairShare(8, 2)).toBe(4);
    expect(fairShare(2, 10)).toBe(1);
  });

  it('leaves nothing behind when a queued call is cancelled', async () => {
    const h = harness();
    cleanup = h.endAll;
    for (let i = 0; i < 4; i++) h.start(await h.admit('interactive_premium', 'a'), 'interactive_premium');
    const controller = new AbortController();
    const queued = h.admit('interactive_premium', 'b', controller.signal);
    expect(h.flow.depth()).toBe(1);
    controller.abort();
    await expect(queued).rejects.toThrow();
    h.endAll();
    expectNoLeaks(h.flow, h.engines);
  });
});

describe('Engine.runningLimit', () => {
  it('learns the running limit from a scrape that shows requests waiting, and forgets it once the engine runs more', () => {
    const e = engine('a');
    e.endScrape({ running: 3, waiting: 0 });
    expect(e.runningLimit).toBeUndefined();
    e.endScrape({ running: 8, waiting: 2 });
    expect(e.runningLimit).toBe(8);
    e.endScrape({ running: 12, waiting: 0 });
    expect(e.runningLimit).toBeUndefined();
  });
});

describe('FairQueue rank', () => {
  it('takes the eligible tenant with the lowest rank, round robin among equals', () => {
    const queue = new FairQueue<{ tenantId: string }>();
    for (const tenantId of ['a', 'a', 'b', 'c']) queue.push({ tenantId });
    const running: Record<string, number> = { a: 0, b: 2, c: 1 };
    expect(queue.take(() => true, (head) => running[head.tenantId]!)!.tenantId).toBe('a');
    running.a = 5;
    expect(queue.take(() => true, (head) => running[head.tenantId]!)!.tenantId).toBe('c');
    expect(queue.take((head) => head.tenantId !== 'b', (head) => running[head.tenantId]!)!.tenantId).toBe('a');
    expect(queue.size).toBe(1);
  });
});
