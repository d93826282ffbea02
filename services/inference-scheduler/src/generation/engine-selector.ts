import { Inject, Injectable } from '@nestjs/common';
import { GrpcError, GrpcStatus } from '@ai-platform/platform';
import type { Engine } from '../engines/engine';
import { EnginePool } from '../engines/engine-pool';
import { providerOverflow } from '../metrics';
import { ProviderRegistry } from '../providers/provider-registry';
import { ENGINE_PICKER, type EnginePicker, type RouteRequest } from '../routing/picker';

/**
 * Chooses the engine of one attempt: an overflow provider when admission said
 * so, else the router's pick among healthy local engines (untried ones first),
 * else a fallback provider when no local engine is left to try.
 */
@Injectable()
export class EngineSelector {
  constructor(
    @Inject(EnginePool) private readonly pool: EnginePool,
    @Inject(ProviderRegistry) private readonly providers: ProviderRegistry,
    @Inject(ENGINE_PICKER) private readonly picker: EnginePicker,
  ) {}

  select(route: RouteRequest, tried: ReadonlySet<string>, lastFailure: unknown, overflow: boolean): Engine {
    if (overflow) {
      const provider = this.providers.overflowFor(route.model, route.priority);
      if (provider && !tried.has(provider.id)) {
        providerOverflow.inc({ provider: provider.id, reason: 'overflow' });
        return provider;
      }
    }
    const now = Date.now();
    const candidates = this.pool.candidates(route.model);
    const untried = candidates.filter((engine) => !tried.has(engine.id));
    const usable = untried.filter((engine) => engine.breaker.allows(now));
    if (usable.length > 0) return this.picker.pick(usable, route);
    const fallback = this.providers.fallbackFor(route.model, tried);
    if (fallback) {
      providerOverflow.inc({ provider: fallback.id, reason: 'fallback' });
      return fallback;
    }
    const allowed = candidates.filter((engine) => engine.breaker.allows(now));
    if (candidates.length > 0 && allowed.length === 0) {
      throw new GrpcError(GrpcStatus.UNAVAILABLE, `every engine serving ${route.model} has its circuit breaker open after repeated failures; try again shortly`);
    }
    // Nothing new to try: an engine this call already tried, again.
    if (allowed.length > 0) return this.picker.pick(allowed, route);
    const last = lastFailure instanceof Error ? `; last error: ${lastFailure.message}` : '';
    throw new GrpcError(GrpcStatus.UNAVAILABLE, `no healthy engine serves model ${route.model} right now${last}`);
  }
}
