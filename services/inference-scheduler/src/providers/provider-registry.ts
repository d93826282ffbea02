import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, z } from '@ai-platform/platform';
import type { SchedulerConfig } from '../config';
import { engineBreakerState } from '../metrics';
import { breakerOptions } from '../resilience/breaker-config';
import { CircuitBreaker } from '../resilience/circuit-breaker';
import { ProviderEngine, type ProviderSpec } from './provider-engine';

const providerSchema = z.object({
  name: z.string().regex(/^[\w.-]{1,64}$/),
  kind: z.enum(['openai', 'anthropic']),
  baseUrl: z.url({ protocol: /^https?$/ }),
  apiKeyEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/).optional(),
  models: z.record(z.string().min(1), z.string().min(1)),
  use: z.array(z.enum(['overflow', 'fallback'])).min(1),
  overflowPriorities: z.array(z.string()).default(['interactive_premium', 'interactive_standard']),
});

/** Parses `PROVIDERS` (a JSON array; empty: none). Throws with the offending field, so a bad config fails startup. */
export function parseProviders(json: string): ProviderSpec[] {
  if (json.trim() === '') return [];
  const parsed = z.array(providerSchema).safeParse(JSON.parse(json));
  if (!parsed.success) throw new Error(`PROVIDERS: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/**
 * External providers configured as engines: `overflow` ones take interactive
 * requests the local pool cannot start within their deadline; `fallback` ones
 * take a call when no local engine is healthy or every local attempt failed
 * before the first token.
 */
@Injectable()
export class ProviderRegistry {
  readonly engines: ProviderEngine[];

  constructor(@Inject(CONFIG) config: SchedulerConfig) {
    this.engines = parseProviders(config.PROVIDERS).map((spec) => {
      const engine = new ProviderEngine(spec);
      engine.breaker = new CircuitBreaker(breakerOptions(config));
      engineBreakerState.set({ engine: engine.id }, 0);
      return engine;
    });
  }

  overflowFor(model: string, lane: string): ProviderEngine | undefined {
    return this.engines.find((engine) => engine.spec.use.includes('overflow') && engine.spec.overflowPriorities.includes(lane) && engine.serves(model) && engine.breaker.allows());
  }

  fallbackFor(model: string, exclude: ReadonlySet<string> = new Set()): ProviderEngine | undefined {
    return this.engines.find((engine) => engine.spec.use.includes('fallback') && engine.serves(model) && !exclude.has(engine.id) && engine.breaker.allows());
  }

  /** Whether some provider serves `model` (so it is not "unknown" even with no local engine). */
  serves(model: string): boolean {
    return this.engines.some((engine) => engine.serves(model));
  }
}
