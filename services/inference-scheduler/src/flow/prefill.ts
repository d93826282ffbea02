import type { Engine } from '../engines/engine';
import { enginePrefillBacklog } from '../metrics';

/**
 * Prefill backlog: an engine computes prompts one prefill at a time, so a new
 * request's first token waits for the uncached prompt tokens already queued
 * there. We count, per engine, the estimated uncached tokens of our requests
 * that have not produced their first token yet (prompt tokens × (1 − prefix
 * hit estimate)), and turn them into a wait with the engine's prefill rate
 * (`ENGINE_PREFILL_THROUGHPUT`).
 */
export function prefillWaitMs(engine: Engine, tokensPerSecond: number): number {
  if (engine.kind !== 'vllm' || tokensPerSecond <= 0) return 0;
  return (engine.pendingPrefillTokens * 1000) / tokensPerSecond;
}

/** Adds a request's uncached tokens to the engine's backlog; the returned function (idempotent) takes them off at its first token or end. */
export function beginPrefill(engine: Engine, tokens: number): () => void {
  const counted = Math.max(0, Math.round(tokens));
  engine.pendingPrefillTokens += counted;
  enginePrefillBacklog.set({ engine: engine.id }, engine.pendingPrefillTokens);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    engine.pendingPrefillTokens = Math.max(0, engine.pendingPrefillTokens - counted);
    enginePrefillBacklog.set({ engine: engine.id }, engine.pendingPrefillTokens);
  };
}
