import type { Logger } from '@ai-platform/platform';
import type { SaturationLimits } from '../flow/saturation';
import { BreakerFilter, SaturationFilter } from './filters';
import { RoutingPipeline, type PickerKind, type WeightedScorer } from './pipeline';
import { KvCacheScorer, LoadScorer, PrefixCacheScorer, SessionAffinityScorer, type Scorer } from './scorers';

export const ROUTING_STRATEGIES = ['prefix-load', 'least-load', 'round-robin', 'session-affinity', 'random'] as const;
export type RoutingStrategy = (typeof ROUTING_STRATEGIES)[number];

/** Scorer weights of each named strategy; `ROUTING_SCORERS` overrides them. */
const STRATEGY_SCORERS: Record<RoutingStrategy, string> = {
  'prefix-load': 'prefix:3,load:2',
  'least-load': 'load:1',
  'session-affinity': 'session:3,load:2',
  'round-robin': '',
  random: '',
};

export interface RoutingOptions {
  strategy: RoutingStrategy;
  /** `name:weight,...` (prefix, load, kv, session); empty: the strategy's. */
  scorers?: string;
  prefixMaxImbalance: number;
  saturation: SaturationLimits;
}

/** Parses `prefix:3,load:2` into weights; throws on unknown names or bad weights (config errors fail startup). */
export function parseScorerWeights(spec: string): Array<{ name: string; weight: number }> {
  if (spec.trim() === '') return [];
  return spec.split(',').map((part) => {
    const [name = '', weightText = '1'] = part.trim().split(':');
    const weight = Number(weightText);
    if (!['prefix', 'load', 'kv', 'session'].includes(name)) throw new Error(`unknown scorer ${JSON.stringify(name)} (known: prefix, load, kv, session)`);
    if (!Number.isFinite(weight) || weight < 0) throw new Error(`scorer ${name}: weight must be a non-negative number`);
    return { name, weight };
  });
}

export function buildRoutingPipeline(options: RoutingOptions, logger?: Logger): RoutingPipeline {
  const make = (name: string): Scorer =>
    name === 'prefix' ? new PrefixCacheScorer(options.prefixMaxImbalance) : name === 'load' ? new LoadScorer() : name === 'kv' ? new KvCacheScorer() : new SessionAffinityScorer();
  const scorers: WeightedScorer[] = parseScorerWeights(options.scorers || STRATEGY_SCORERS[options.strategy]).map(({ name, weight }) => ({ scorer: make(name), weight }));
  const picker: PickerKind = options.strategy === 'round-robin' ? 'round-robin' : options.strategy === 'random' ? 'random' : 'max-score';
  const name = options.scorers ? `custom(${options.scorers})` : options.strategy;
  return new RoutingPipeline(name, [new BreakerFilter(), new SaturationFilter(options.saturation)], scorers, picker, logger);
}
