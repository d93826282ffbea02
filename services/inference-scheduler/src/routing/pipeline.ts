import type { Logger } from '@ai-platform/platform';
import type { Engine } from '../engines/engine';
import { prefixHitEstimate, routingDecisions } from '../metrics';
import { CHARS_PER_TOKEN, PromptBlocks } from './prefix-hash';
import type { EnginePicker, RouteRequest } from './picker';
import type { Scorer, ScoringContext } from './scorers';

/** Narrows the candidates; returning an empty list means "no opinion" (the filter is skipped). */
export interface EngineFilter {
  readonly name: string;
  filter(candidates: readonly Engine[], now: number): Engine[];
}

export interface WeightedScorer {
  scorer: Scorer;
  weight: number;
}

export type PickerKind = 'max-score' | 'round-robin' | 'random';

/**
 * llm-d-style routing: filters narrow the candidates, weighted scorers rate
 * each one, a picker chooses. `max-score` breaks ties round robin so an idle
 * pool still spreads; `round-robin` ignores scores.
 */
export class RoutingPipeline implements EnginePicker {
  private cursor = 0;

  constructor(
    readonly name: string,
    private readonly filters: readonly EngineFilter[],
    private readonly scorers: readonly WeightedScorer[],
    private readonly picker: PickerKind,
    private readonly logger?: Logger,
    private readonly random: () => number = Math.random,
  ) {}

  pick(candidates: readonly Engine[], request: RouteRequest): Engine {
    if (candidates.length === 0) throw new Error('pick() needs at least one candidate');
    const now = Date.now();
    let pool: readonly Engine[] = candidates;
    for (const filter of this.filters) {
      const kept = filter.filter(pool, now);
      if (kept.length > 0) pool = kept;
    }
    const sorted = [...pool].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const context: ScoringContext = { blocks: request.prompt?.blocks ?? new PromptBlocks(request.messages), sessionKey: request.sessionKey ?? '', prefixHits: new Map() };
    const totals = new Array<number>(sorted.length).fill(0);
    const parts: Record<string, number[]> = {};
    if (this.picker === 'max-score') {
      for (const { scorer, weight } of this.scorers) {
        const scores = scorer.score(sorted, context);
        parts[scorer.name] = scores;
        for (let i = 0; i < sorted.length; i++) totals[i]! += weight * scores[i]!;
      }
    }
    const chosenIndex = this.choose(totals);
    const chosen = sorted[chosenIndex]!;
    for (const { scorer } of this.scorers) scorer.onPicked?.(chosen, context);

    routingDecisions.inc({ strategy: this.name, engine: chosen.id });
    const hit = context.prefixHits.get(chosen);
    let chars = 0;
    for (const message of request.messages) chars += message.role.length + message.content.length;
    request.uncachedTokens = Math.ceil(chars / CHARS_PER_TOKEN) * (1 - (hit ?? 0));
    if (hit !== undefined) prefixHitEstimate.observe({ model: request.model }, hit);
    if (this.logger?.isLevelEnabled('debug')) {
      this.logger.debug(
        {
          strategy: this.name,
          chosen: chosen.id,
          candidates: sorted.map((engine, i) => ({
            engine: engine.id,
            load: engine.load,
            score: Number(totals[i]!.toFixed(3)),
            ...Object.fromEntries(Object.entries(parts).map(([name, scores]) => [name, Number(scores[i]!.toFixed(3))])),
          })),
          filtered_out: candidates.length - sorted.length,
        },
        'routing decision',
      );
    }
    return chosen;
  }

  private choose(totals: readonly number[]): number {
    if (this.picker === 'random') return Math.floor(this.random() * totals.length);
    if (this.picker === 'round-robin') return this.next(totals.length);
    const best = Math.max(...totals);
    // Scores within a hair of the best are ties (float sums of weights).
    const tied = totals.flatMap((total, i) => (total >= best - 1e-9 ? [i] : []));
    return tied.length === 1 ? tied[0]! : tied[this.next(tied.length)]!;
  }

  private next(length: number): number {
    const index = this.cursor % length;
    this.cursor = (this.cursor + 1) % 1_000_000_007;
    return index;
  }
}
