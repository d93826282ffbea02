import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, GrpcError, GrpcStatus } from '@ai-platform/platform';
import type { SchedulerConfig } from '../config';
import type { Engine } from '../engines/engine';
import { EnginePool } from '../engines/engine-pool';
import { saturationLimits } from '../flow/flow-controller';
import { atRunningLimit, engineMeets, headroomPolicy, laneSlots, prefillBudgetMs, type HeadroomPolicy } from '../flow/headroom';
import { laneOf } from '../flow/lanes';
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
  private readonly headroom: HeadroomPolicy;

  constructor(
    @Inject(CONFIG) private readonly config: SchedulerConfig,
    @Inject(EnginePool) private readonly pool: EnginePool,
    @Inject(ProviderRegistry) private readonly providers: ProviderRegistry,
    @Inject(ENGINE_PICKER) private readonly picker: EnginePicker,
  ) {
    this.headroom = headroomPolicy(config, saturationLimits(config));
  }

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
    let usable = untried.filter((engine) => engine.breaker.allows(now));
    // Only engines with room for this lane (batch within its share) that can finish the prompt's prefill
    // in time, as admission counted them; when none can, routing's own filters decide.
    const lane = laneOf(route.priority);
    const withHeadroom = usable.filter((engine) => laneSlots(engine, lane, this.headroom, now) > 0);
    if (withHeadroom.length > 0) usable = withHeadroom;
    if (route.prompt) {
      const budgetMs = route.prefillDeadline !== undefined ? route.prefillDeadline - now : prefillBudgetMs(lane, 0, 0, this.headroom);
      const inTime = usable.filter((engine) => (lane === 'batch' || !atRunningLimit(engine)) && engineMeets(engine, lane, route.prompt, budgetMs, this.headroom));
      if (inTime.length > 0) usable = inTime;
    }
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
