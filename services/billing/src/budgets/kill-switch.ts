import { Inject, Injectable } from '@nestjs/common';
import { LOGGER, type Logger, PeriodicTask, type Pool, type Redis } from '@ai-platform/platform';
import { PG_POOL, REDIS } from '../infra/tokens';
import { killSwitchKey, type BudgetScope } from './periods';

export interface SwitchOn {
  tenantId: string;
  scope: BudgetScope;
  subject: string;
  until: Date;
}

/**
 * Publishes kill switches to Redis, where every gateway replica reads them on
 * the hot path. Postgres (`budget_periods.tripped_at`/`lifted_at`) is the
 * source of truth and Reserve enforces it there too; Redis is the broadcast:
 * a key per switch that expires at the end of its period (the switch lifts by
 * itself). After a transaction that tripped a switch commits, and every
 * reconcile interval, the active switches are (re)written and stale keys
 * removed, so a Redis restart or a lost write heals within one interval.
 */
@Injectable()
export class KillSwitch {
  private pending = false;
  private readonly task: PeriodicTask<void>;

  constructor(
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(REDIS) private readonly redis: Redis | undefined,
  ) {
    this.task = new PeriodicTask('kill switch reconcile', () => this.pass(), logger, undefined);
  }

  /** A transaction tripped a switch: reconcile once it has committed (call flush after commit). */
  afterCommit(_switch: SwitchOn): void {
    this.pending = true;
  }

  async flush(): Promise<void> {
    if (!this.pending) return;
    this.pending = false;
    await this.reconcile();
  }

  start(intervalMs: number): void {
    if (this.redis) this.task.start(intervalMs);
  }

  stop(): Promise<void> {
    return this.task.stop();
  }

  async lifted(tenantId: string, scope: BudgetScope, subject: string): Promise<void> {
    await this.redis?.del(killSwitchKey(tenantId, scope, subject)).catch((error) => this.logger.warn({ err: error }, 'kill switch key not removed; reconcile will'));
  }

  reconcile(): Promise<void> {
    return this.redis ? this.task.runOnce() : Promise.resolve();
  }

  private async pass(): Promise<void> {
    const redis = this.redis!;
    const { rows } = await this.pool.query<{ tenant_id: string; scope: BudgetScope; subject: string; period_end: Date }>(`SELECT * FROM billing.active_kill_switches()`);
    const active = new Map<string, number>();
    for (const row of rows) {
      const key = killSwitchKey(row.tenant_id, row.scope, row.subject);
      active.set(key, Math.max(active.get(key) ?? 0, row.period_end.getTime()));
    }
    const pipeline = redis.multi();
    for (const [key, until] of active) pipeline.set(key, String(until), 'PXAT', until);
    if (active.size) await pipeline.exec();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', 'billing:kill:*', 'COUNT', 500);
      cursor = next;
      const stale = keys.filter((key) => !active.has(key));
      if (stale.length) await redis.del(...stale);
    } while (cursor !== '0');
  }
}
