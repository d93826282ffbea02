import type { SchedulerConfig } from '../config';
import type { Engine } from '../engines/engine';
import { CHARS_PER_TOKEN, PromptBlocks } from '../routing/prefix-hash';
import type { Lane } from './lanes';
import { freeBatchSlots, freeSlots, type SaturationLimits } from './saturation';

/**
 * Headroom for interactive lanes, in two resources an engine has:
 * - running slots: batch may hold only `batchShare` of an engine's slots;
 * - prefill time: an engine computes prompts one prefill at a time, so a
 *   request's first token waits for the uncached prompt tokens queued there
 *   before it (`Engine.pendingPrefillTokens`, see prefill.ts). An interactive
 *   call goes only where its prefill can end within its TTFT target; a batch
 *   call only where the backlog it leaves stays within `batchShare` of what a
 *   premium call may wait behind, so a premium call still finds an engine.
 */
export interface HeadroomPolicy {
  limits: SaturationLimits;
  batchShare: number;
  /** Prefill rate of one engine in the scheduler's token estimate (chars/4) per second; 0: prefill ignored. */
  prefillTokensPerSecond: number;
  premiumTargetMs: number;
}

/** Share of a lane's TTFT target by which prefill must be done (the rest: first decode step, streaming, our overhead). */
export const PREFILL_SHARE_OF_TTFT_TARGET = 0.9;

export function headroomPolicy(config: SchedulerConfig, limits: SaturationLimits): HeadroomPolicy {
  return { limits, batchShare: config.BATCH_MAX_ENGINE_SHARE, prefillTokensPerSecond: config.ENGINE_PREFILL_THROUGHPUT, premiumTargetMs: config.TTFT_TARGET_PREMIUM_MS };
}

/** Requests of `lane` the engine can take now: its free slots, for batch only up to batch's share of the engine. */
export function laneSlots(engine: Engine, lane: Lane, policy: HeadroomPolicy, now = Date.now()): number {
  return lane === 'batch' ? freeBatchSlots(engine, policy.limits, policy.batchShare, now) : freeSlots(engine, policy.limits, now);
}

/** A prompt as admission sees it: its block hashes (shared with routing) and its estimated tokens. */
export interface PromptShape {
  blocks: PromptBlocks;
  tokens: number;
}

export function promptShape(messages: ReadonlyArray<{ role: string; content: string }>): PromptShape {
  let chars = 0;
  for (const message of messages) chars += message.role.length + message.content.length;
  return { blocks: new PromptBlocks(messages), tokens: Math.ceil(chars / CHARS_PER_TOKEN) };
}

/** Estimated ms until the prompt's prefill ends on `engine`: its backlog plus the prompt's tokens our prefix index says it lacks. */
export function prefillEtaMs(engine: Engine, policy: HeadroomPolicy, prompt?: PromptShape): number {
  if (engine.kind !== 'vllm' || policy.prefillTokensPerSecond <= 0) return 0;
  let own = 0;
  if (prompt) {
    const hashes = prompt.blocks.forBlockSize(engine.blockSize);
    const hit = hashes.length === 0 ? 0 : engine.prefixIndex.matchedPrefix(hashes) / hashes.length;
    own = prompt.tokens * (1 - hit);
  }
  return ((engine.pendingPrefillTokens + own) * 1000) / policy.prefillTokensPerSecond;
}

/** How long from now a call of `lane` that has waited `waitedMs` may take to finish its prefill. */
export function prefillBudgetMs(lane: Lane, targetMs: number, waitedMs: number, policy: HeadroomPolicy): number {
  if (lane === 'batch') return policy.premiumTargetMs * PREFILL_SHARE_OF_TTFT_TARGET * policy.batchShare;
  return targetMs * PREFILL_SHARE_OF_TTFT_TARGET - waitedMs;
}

/**
 * Whether the prompt's prefill could end within `budgetMs` on `engine`. An
 * interactive call may always take an engine without backlog (the best it can
 * get, even when its prompt alone is long); a batch call there too only while
 * it would leave that engine within batch's budget or no interactive call
 * waits (`interactiveWaiting`).
 */
export function engineMeets(engine: Engine, lane: Lane, prompt: PromptShape | undefined, budgetMs: number, policy: HeadroomPolicy, interactiveWaiting = false): boolean {
  if (engine.kind !== 'vllm' || policy.prefillTokensPerSecond <= 0) return true;
  if (engine.pendingPrefillTokens === 0 && (lane !== 'batch' || !interactiveWaiting)) return true;
  return prefillEtaMs(engine, policy, prompt) <= budgetMs;
}

/** Whether a new call would queue inside the engine for a running slot (its load at the running limit we saw it report). */
export function atRunningLimit(engine: Engine): boolean {
  return engine.kind === 'vllm' && engine.runningLimit !== undefined && engine.load >= engine.runningLimit;
}

/**
 * Whether some engine (with room for `lane`, unless `withSlots` is false)
 * meets the prefill budget. With slots, an interactive call also needs an
 * engine below its running limit: queued inside the engine it would wait for
 * a running call to end, which no budget here accounts for.
 */
export function meetsPrefillDeadline(engines: readonly Engine[], lane: Lane, prompt: PromptShape | undefined, budgetMs: number, policy: HeadroomPolicy, withSlots: boolean, interactiveWaiting = false, now = Date.now()): boolean {
  for (const engine of engines) {
    if (!engine.breaker.allows(now) || (withSlots && (laneSlots(engine, lane, policy, now) <= 0 || (lane !== 'batch' && atRunningLimit(engine))))) continue;
    if (engineMeets(engine, lane, prompt, budgetMs, policy, interactiveWaiting)) return true;
  }
  return false;
}
