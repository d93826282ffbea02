import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { CONFIG, createRedis, HealthRegistry, type Redis } from '@ai-platform/platform';
import type { GatewayConfig } from '../config';

/**
 * The request-path Redis client (limits, idempotency): every command is bounded
 * by REDIS_TIMEOUT_MS and fails fast while disconnected. It is deliberately not
 * a readiness check: a Redis outage is handled by each feature's policy.
 */
@Injectable()
export class GatewayRedis implements OnModuleInit, OnApplicationShutdown {
  readonly client: Redis;

  constructor(@Inject(CONFIG) config: GatewayConfig, @Inject(HealthRegistry) _health: HealthRegistry) {
    this.client = createRedis(config.REDIS_URL, { name: 'gateway', commandTimeoutMs: config.REDIS_TIMEOUT_MS });
  }

  /** Gives the first connection a moment before traffic; a Redis that is down does not block startup. */
  async onModuleInit(): Promise<void> {
    if (this.client.status === 'ready') return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 3_000);
      this.client.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async onApplicationShutdown(): Promise<void> {
    this.client.disconnect();
  }
}
