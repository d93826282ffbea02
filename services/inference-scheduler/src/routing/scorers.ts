import type { Engine } from '../engines/engine';
import type { PromptBlocks } from './prefix-hash';

/** What scorers see of one request; `blocks` is computed lazily, once per block size. */
export interface ScoringContext {
  blocks: PromptBlocks;
  /** Key whose requests should stick to one engine (conversation, else user); empty: none. */
  sessionKey: string;
  /** Per-candidate prefix hit estimate (0..1), filled by the prefix scorer for logs and metrics. */
  prefixHits: Map<Engine, number>;
}

/** Scores every candidate in [0, 1]; higher is better. Weighted and summed by the pipeline. */
export interface Scorer {
  readonly name: string;
  score(candidates: readonly Engine[], context: ScoringContext): number[];
  /** Learns from the decision (prefix index, session table). */
  onPicked?(engine: Engine, context: ScoringContext): void;
}

/** Min-max normalised "lower is better" values: the lowest gets 1, the highest 0, all 1 when equal. */
function inverseMinMax(values: readonly number[]): number[] {
  const min = Math.min(...values);
  const max = Math.max(...values);
  return max === min ? values.map(() => 1) : values.map((value) => (max - value) / (max - min));
}

/** Fewest requests open or queued on the engine (ours + others' from its metrics). */
export class LoadScorer implements Scorer {
  readonly name = 'load';
  score(candidates: readonly Engine[]): number[] {
    return inverseMinMax(candidates.map((engine) => engine.load));
  }
}

/** Lowest KV-cache usage (engines without the metric count as half full). */
export class KvCacheScorer implements Scorer {
  readonly name = 'kv';
  score(candidates: readonly Engine[]): number[] {
    return candidates.map((engine) => 1 - (engine.scraped?.kvCacheUsage ?? 0.5));
  }
}

/**
 * Sends a session back to the engine that served it last (its conversation's
 * KV blocks are likely still there). The table is bounded; old sessions drop out.
 */
export class SessionAffinityScorer implements Scorer {
  readonly name = 'session';
  private readonly lastEngine = new Map<string, string>();

  constructor(private readonly maxSessions = 100_000) {}

  score(candidates: readonly Engine[], context: ScoringContext): number[] {
    const preferred = context.sessionKey ? this.lastEngine.get(context.sessionKey) : undefined;
    return candidates.map((engine) => (engine.id === preferred ? 1 : 0));
  }

  onPicked(engine: Engine, context: ScoringContext): void {
    if (!context.sessionKey) return;
    this.lastEngine.delete(context.sessionKey);
    this.lastEngine.set(context.sessionKey, engine.id);
    if (this.lastEngine.size > this.maxSessions) this.lastEngine.delete(this.lastEngine.keys().next().value as string);
  }
}

/**
 * Expected prefix-cache hit: the share of the prompt's blocks at the start of
 * the prompt that the engine's index holds. A hot prefix must not pile onto
 * the one engine that has it (the failure mode SGLang's router guards with a
 * balance threshold): an engine carrying more than `maxImbalance` requests above
 * the least-loaded candidate gets no prefix credit, so load decides there and
 * the prefix spreads to a second engine, whose index then learns it too.
 */
export class PrefixCacheScorer implements Scorer {
  readonly name = 'prefix';

  constructor(private readonly maxImbalance = 4) {}

  score(candidates: readonly Engine[], context: ScoringContext): number[] {
    const minLoad = Math.min(...candidates.map((engine) => engine.load));
    return candidates.map((engine) => {
      const hashes = context.blocks.forBlockSize(engine.blockSize);
      const hit = hashes.length === 0 ? 0 : engine.prefixIndex.matchedPrefix(hashes) / hashes.length;
      context.prefixHits.set(engine, hit);
      return engine.load - minLoad > this.maxImbalance ? 0 : hit;
    });
  }

  onPicked(engine: Engine, context: ScoringContext): void {
    engine.prefixIndex.record(context.blocks.forBlockSize(engine.blockSize));
  }
}
