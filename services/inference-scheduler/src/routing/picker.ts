import type { Engine } from '../engines/engine';

/** What a picker may look at to place one Generate call. */
export interface RouteRequest {
  model: string;
  /** The prompt, for prefix-aware pickers. */
  messages: ReadonlyArray<{ role: string; content: string }>;
  tenantId: string;
  priority: string;
  /** Requests with the same key should share an engine (session affinity); conversation id, else user. */
  sessionKey?: string;
  /** Interactive calls: when (ms since epoch) prefill must be done for the TTFT target; engines that cannot are avoided. */
  prefillDeadline?: number;
  /** The prompt's shape, for the prefill estimate (computed once per call). */
  prompt?: import('../flow/headroom').PromptShape;
  /** Set by the picker: estimated prompt tokens the chosen engine must prefill (not in its prefix cache). */
  uncachedTokens?: number;
}

/**
 * Chooses the engine for one attempt of a call among `candidates`: healthy
 * engines serving the model, never empty, without the engines this call has
 * already failed on when there are others. Implementations may keep state
 * (round-robin cursors, prefix indexes); they are called from one thread.
 */
export interface EnginePicker {
  readonly name: string;
  pick(candidates: readonly Engine[], request: RouteRequest): Engine;
}

export const ENGINE_PICKER = Symbol('ENGINE_PICKER');

/**
 * Least-loaded engine first (our in-flight requests plus the running and
 * waiting requests others have on it, from the engine's metrics); ties go
 * round robin, so an idle pool spreads sequential calls too.
 */
export class LeastLoadPicker implements EnginePicker {
  readonly name = 'least-load';
  private cursor = 0;

  pick(candidates: readonly Engine[], _request: RouteRequest): Engine {
    if (candidates.length === 0) throw new Error('pick() needs at least one candidate');
    let best = Number.POSITIVE_INFINITY;
    let tied: Engine[] = [];
    for (const engine of candidates) {
      const load = engine.load;
      if (load < best) {
        best = load;
        tied = [engine];
      } else if (load === best) {
        tied.push(engine);
      }
    }
    if (tied.length === 1) return tied[0]!;
    tied.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const chosen = tied[this.cursor % tied.length]!;
    this.cursor = (this.cursor + 1) % 1_000_000_007;
    return chosen;
  }
}
