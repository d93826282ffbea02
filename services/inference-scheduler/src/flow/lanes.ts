/** Priority lanes, most urgent first. Names match `UsageEvent.priority`. */
export const LANES = ['interactive_premium', 'interactive_standard', 'batch'] as const;
export type Lane = (typeof LANES)[number];

/** The lane of a request's priority name; unknown names are treated as interactive standard. */
export function laneOf(priority: string): Lane {
  return (LANES as readonly string[]).includes(priority) ? (priority as Lane) : 'interactive_standard';
}

/** Lanes at least as urgent as `lane` (the ones a request of `lane` waits behind). */
export function lanesAtOrAbove(lane: Lane): readonly Lane[] {
  return LANES.slice(0, LANES.indexOf(lane) + 1);
}

/**
 * Share of the TTFT target a request may spend queueing; the rest is left for
 * routing and prefill, so a request admitted at its deadline can still make it.
 */
export const QUEUE_SHARE_OF_TTFT_TARGET = 0.75;
