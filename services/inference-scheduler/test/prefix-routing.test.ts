import { describe, expect, it } from 'vitest';
import { Engine } from '../src/engines/engine';
import { blockHashes, CHARS_PER_TOKEN, PromptBlocks, renderPrompt } from '../src/routing/prefix-hash';
import { PrefixIndex } from '../src/routing/prefix-index';
import { buildRoutingPipeline, parseScorerWeights, type RoutingStrategy } from '../src/routing/routing-config';
import type { RouteRequest } from '../src/routing/picker';

const saturation = { maxLoad: 32, maxWaiting: 8, maxKvUsage: 0.95, metricsStaleMs: 10_000, staleMaxInFlight: 1 };

function engine(id: string, load = 0): Engine {
  const result = new Engine(id, `http://${id}`);
  result.healthy = true;
  result.models = [{ id: 'm' }];
  result.endScrape({ running: load, waiting: 0, kvCacheUsage: 0.1 });
  return result;
}

const system = (group: number) => `You are assistant number ${group}. `.repeat(40);
const request = (group: number, user: string, extra: Partial<RouteRequest> = {}): RouteRequest => ({
  model: 'm',
  messages: [{ role: 'system', content: system(group) }, { role: 'user', content: user }],
  tenantId: 't',
  priority: 'interactive_standard',
  ...extra,
});

const pipeline = (strategy: RoutingStrategy, imbalance = 4) => buildRoutingPipeline({ strategy, prefixMaxImbalance: imbalance, saturation });

describe('prompt block hashes', () => {
  it('are chained: prompts sharing a prefix share exactly the leading full blocks', () => {
    const a = blockHashes('x'.repeat(100) + 'AAAA'.repeat(50), 64);
    const b = blockHashes('x'.repeat(100) + 'BBBB'.repeat(50), 64);
    expect(a).toHaveLength(4); // 300 chars → 4 full blocks of 64, the partial one is not cacheable
    expect(a[0]).toBe(b[0]); // first 64 chars identical
    expect(a[1]).not.toBe(b[1]); // chars 64..127 differ from char 100 on
    expect(a[3]).not.toBe(blockHashes('y' + 'x'.repeat(99) + 'AAAA'.repeat(50), 64)[3]); // a change early changes every later block
    expect(blockHashes('abc', 64)).toEqual([]);
  });

  it('follow the engine block size, computed once per size', () => {
    const blocks = new PromptBlocks([{ role: 'system', content: 'z'.repeat(1000) }]);
    const text = renderPrompt([{ role: 'system', content: 'z'.repeat(1000) }]);
    expect(blocks.forBlockSize(16)).toHaveLength(Math.floor(text.length / (16 * CHARS_PER_TOKEN)));
    expect(blocks.forBlockSize(32)).toHaveLength(Math.floor(text.length / (32 * CHARS_PER_TOKEN)));
    expect(blocks.forBlockSize(16)).toBe(blocks.forBlockSize(16));
  });
});

describe('PrefixIndex', () => {
  it('matches the leading blocks it holds and evicts the least recently used blocks once over capacity', () => {
    const index = new PrefixIndex(6);
    index.record([1, 2, 3]);
    expect(index.matchedPrefix([1, 2, 3, 4])).toBe(3);
    expect(index.matchedPrefix([9, 2, 3])).toBe(0); // chained: no match past a miss
    index.record([7, 8, 9, 10]);
    expect(index.size).toBe(7); // evictions run in batches, a quarter over capacity
    index.record([11]);
    expect(index.size).toBe(6);
    // The oldest went first: the tail of the first prompt (its first block is the most recent of it).
    expect(index.matchedPrefix([1, 2, 3])).toBe(1);
    expect(index.matchedPrefix([7, 8, 9, 10])).toBe(4);
    index.resize(2);
    expect(index.size).toBe(2);
  });
});

describe('routing pipeline', () => {
  it('prefix-load sends a group to the engine that has its prefix, and new groups elsewhere', () => {
    const engines = [engine('a'), engine('b'), engine('c')];
    const router = pipeline('prefix-load');
    const first = router.pick(engines, request(1, 'hi'));
    for (let i = 0; i < 5; i++) expect(router.pick(engines, request(1, `question ${i}`)).id).toBe(first.id);
    const other = router.pick(engines, request(2, 'hi'));
    expect(other.prefixIndex.matchedPrefix(new PromptBlocks(request(2, 'x').messages).forBlockSize(16))).toBeGreaterThan(0);
  });

  it('does not pile a hot prefix onto one engine: beyond the imbalance bound load decides, and the prefix spreads', () => {
    const engines = [engine('a'), engine('b')];
    const router = pipeline('prefix-load', 2);
    const hot = router.pick(engines, request(1, 'q'));
    hot.inFlight = 3; // three above the other engine
    const next = router.pick(engines, request(1, 'q2'));
    expect(next.id).not.toBe(hot.id);
    // Both now hold the prefix: the less loaded one keeps getting it.
    expect(router.pick(engines, request(1, 'q3')).id).toBe(next.id);
  });

  it('least-load prefers the engine with fewer requests; round-robin rotates regardless', () => {
    const engines = [engine('a', 5), engine('b', 1), engine('c', 3)];
    expect(pipeline('least-load').pick(engines, request(1, 'q')).id).toBe('b');
    const rr = pipeline('round-robin');
    expect([1, 2, 3, 4].map(() => rr.pick(engines, request(1, 'q')).id)).toEqual(['a', 'b', 'c', 'a']);
  });

  it('session affinity keeps a conversation on its engine', () => {
    const engines = [engine('a'), engine('b'), engine('c')];
    const router = pipeline('session-affinity');
    const first = router.pick(engines, request(1, 'q', { sessionKey: 'conv-1' }));
    for (let i = 0; i < 4; i++) expect(router.pick(engines, request(i + 5, 'q', { sessionKey: 'conv-1' })).id).toBe(first.id);
  });

  it('filters out engines with an open breaker, saturated engines and engines with stale metrics while others remain', () => {
    const open = engine('a');
    for (let i = 0; i < 5; i++) open.breaker.onFailure();
    const full = engine('b', 40);
    const stale = engine('c');
    stale.scrapedAt = Date.now() - 60_000;
    const fine = engine('d', 10);
    const router = pipeline('round-robin');
    for (let i = 0; i < 4; i++) expect(router.pick([open, full, stale, fine], request(1, `q${i}`)).id).toBe('d');
    // All filtered: the filter has no opinion and routing still answers.
    expect(['a', 'b', 'c']).toContain(router.pick([open, full, stale], request(1, 'q')).id);
  });

  it('parses scorer weights and refuses unknown scorers', () => {
    expect(parseScorerWeights('prefix:3, load:2,kv')).toEqual([{ name: 'prefix', weight: 3 }, { name: 'load', weight: 2 }, { name: 'kv', weight: 1 }]);
    expect(() => parseScorerWeights('magic:1')).toThrow(/unknown scorer/);
    expect(() => parseScorerWeights('load:-1')).toThrow(/non-negative/);
  });
});
