import { Inject, Injectable } from '@nestjs/common';
import type { PoolClient } from '@ai-platform/platform';
import { formatCredits, toBigInt } from '../ledger/money';
import { AlertSender } from './alert-sender';
import { KillSwitch } from './kill-switch';
import { periodBounds, type BudgetPeriod, type BudgetScope } from './periods';

export interface BudgetState {
  id: string;
  scope: BudgetScope;
  subject: string;
  period: BudgetPeriod;
  limitMicros: bigint;
  hardLimitPercent: number;
  periodStart: Date;
  periodEnd: Date;
  spentMicros: bigint;
  alerted70: boolean;
  alerted90: boolean;
  tripped: boolean;
  lifted: boolean;
}

export interface Spend {
  userId: string;
  apiKeyId: string;
  micros: bigint;
}

/** A budget (or its kill switch) refuses the request. */
export class BudgetExceededError extends Error {
  constructor(message: string, readonly budget: BudgetState, readonly tripped: boolean) {
    super(message);
  }
}

export const hardLimit = (budget: Pick<BudgetState, 'limitMicros' | 'hardLimitPercent'>) => (budget.limitMicros * BigInt(budget.hardLimitPercent)) / 100n;

const describe = (b: BudgetState) => `${b.period === 'day' ? 'daily' : 'monthly'} ${b.scope === 'tenant' ? 'tenant' : `${b.scope} ${b.subject}`} budget`;

/**
 * Daily and monthly budgets per tenant, user and API key, all in the caller's
 * transaction with the tenant's account row locked (so checks and spend are
 * serialised per tenant). A request is admitted only if settled spend + open
 * holds + its worst case stays within the hard limit; spend is recorded as
 * usage settles; alerts fire once per threshold per period (flags in
 * `budget_periods`, alert rows written in the same transaction); the kill
 * switch trips at the hard limit and is published to Redis after commit.
 */
@Injectable()
export class BudgetService {
  constructor(
    @Inject(AlertSender) private readonly alerts: AlertSender,
    @Inject(KillSwitch) private readonly killSwitch: KillSwitch,
  ) {}

  /** Publishes switches tripped by a transaction that has now committed. */
  afterCommit(): Promise<void> {
    return this.killSwitch.flush();
  }

  /** Budgets that apply to a request of this user and key, with their current period's state. */
  async applicable(client: PoolClient, tenantId: string, userId: string, apiKeyId: string, now = new Date()): Promise<BudgetState[]> {
    const { rows } = await client.query(
      `SELECT b.id, b.scope, b.subject, b.period, b.limit_micros, b.hard_limit_percent
         FROM billing.budgets b
        WHERE b.tenant_id = $1 AND (b.scope = 'tenant' OR (b.scope = 'user' AND b.subject = $2) OR (b.scope = 'api_key' AND b.subject = $3))`,
      [tenantId, userId, apiKeyId],
    );
    if (rows.length === 0) return [];
    const bounds = rows.map((row) => periodBounds(row.period as BudgetPeriod, now));
    const periods = await client.query(
      `SELECT budget_id, spent_micros, alerted_70, alerted_90, tripped_at IS NOT NULL AS tripped, lifted_at IS NOT NULL AS lifted
         FROM billing.budget_periods WHERE (budget_id, period_start) IN (SELECT * FROM unnest($1::uuid[], $2::timestamptz[]))`,
      [rows.map((row) => row.id), bounds.map((bound) => bound.start)],
    );
    const byId = new Map(periods.rows.map((row) => [row.budget_id as string, row]));
    return rows.map((row, index) => {
      const period = byId.get(row.id);
      return {
        id: row.id, scope: row.scope, subject: row.subject, period: row.period, limitMicros: toBigInt(row.limit_micros),
        hardLimitPercent: row.hard_limit_percent, periodStart: bounds[index]!.start, periodEnd: bounds[index]!.end,
        spentMicros: toBigInt(period?.spent_micros), alerted70: period?.alerted_70 ?? false, alerted90: period?.alerted_90 ?? false,
        tripped: period?.tripped ?? false, lifted: period?.lifted ?? false,
      };
    });
  }

  /**
   * Throws BudgetExceededError when a budget refuses `amount`. When the
   * settled spend alone leaves less than this request's worst case, the
   * budget is exhausted: the kill switch trips (written by the caller's
   * transaction; the caller must commit before throwing, see ReservationService).
   */
  async check(client: PoolClient, tenantId: string, userId: string, apiKeyId: string, amount: bigint): Promise<void> {
    const budgets = await this.applicable(client, tenantId, userId, apiKeyId);
    if (budgets.length === 0) return;
    // Kept by the database as holds change (migrations 010 and 011), so the check costs the same
    // with ten or ten thousand requests in flight.
    const held = await client.query<{ tenant: string; user: string; key: string }>(
      `SELECT a.held_micros AS tenant,
              coalesce((SELECT h.held_micros FROM billing.budget_subject_holds h WHERE h.tenant_id = $1 AND h.scope = 'user' AND h.subject = $2), 0) AS user,
              coalesce((SELECT h.held_micros FROM billing.budget_subject_holds h WHERE h.tenant_id = $1 AND h.scope = 'api_key' AND h.subject = $3), 0) AS key
         FROM billing.accounts a WHERE a.tenant_id = $1 AND a.kind = 'tenant'`,
      [tenantId, userId, apiKeyId],
    );
    const heldBy = { tenant: toBigInt(held.rows[0]?.tenant), user: toBigInt(held.rows[0]?.user), api_key: toBigInt(held.rows[0]?.key) };
    for (const budget of budgets) {
      if (budget.lifted) continue;
      if (budget.tripped) {
        throw new BudgetExceededError(`the ${describe(budget)} kill switch is on (limit ${formatCredits(budget.limitMicros)} reached); it lifts at ${budget.periodEnd.toISOString()} or when an operator lifts it`, budget, false);
      }
      const hard = hardLimit(budget);
      const committed = budget.spentMicros + heldBy[budget.scope];
      if (committed + amount > hard) {
        const exhausted = budget.spentMicros + amount > hard;
        if (exhausted) await this.trip(client, tenantId, budget);
        throw new BudgetExceededError(
          `${describe(budget)} exceeded: this request needs up to ${formatCredits(amount)} but the budget has ${formatCredits(hard - committed > 0n ? hard - committed : 0n)} left ` +
            `(limit ${formatCredits(budget.limitMicros)}, hard limit ${budget.hardLimitPercent}%, spent ${formatCredits(budget.spentMicros)}, held ${formatCredits(heldBy[budget.scope])} by requests in flight)` +
            (exhausted ? `; the kill switch is now on until ${budget.periodEnd.toISOString()} or until an operator lifts it` : '; retry when requests in flight finish, or lower max_tokens'),
          budget,
          exhausted,
        );
      }
    }
  }

  /** Adds settled spend (negative = refund) to every applicable budget; fires alerts and trips switches. */
  async recordSpend(client: PoolClient, tenantId: string, spends: Spend[]): Promise<void> {
    const groups = new Map<string, Spend>();
    for (const spend of spends) {
      const key = `${spend.userId}\u0000${spend.apiKeyId}`;
      const group = groups.get(key);
      if (group) group.micros += spend.micros;
      else groups.set(key, { ...spend });
    }
    const totals = new Map<string, { budget: BudgetState; micros: bigint }>();
    for (const group of groups.values()) {
      if (group.micros === 0n) continue;
      for (const budget of await this.applicable(client, tenantId, group.userId, group.apiKeyId)) {
        const entry = totals.get(budget.id) ?? { budget, micros: 0n };
        entry.micros += group.micros;
        totals.set(budget.id, entry);
      }
    }
    for (const { budget, micros } of totals.values()) {
      const { rows } = await client.query<{ spent_micros: string }>(
        `INSERT INTO billing.budget_periods (budget_id, period_start, period_end, tenant_id, spent_micros) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (budget_id, period_start) DO UPDATE SET spent_micros = budget_periods.spent_micros + EXCLUDED.spent_micros
         RETURNING spent_micros`,
        [budget.id, budget.periodStart, budget.periodEnd, tenantId, micros.toString()],
      );
      const spent = toBigInt(rows[0]?.spent_micros);
      const state = { ...budget, spentMicros: spent };
      for (const [percent, flag] of [[70, 'alerted_70'], [90, 'alerted_90']] as const) {
        const done = percent === 70 ? budget.alerted70 : budget.alerted90;
        if (!done && spent * 100n >= budget.limitMicros * BigInt(percent)) {
          await client.query(`UPDATE billing.budget_periods SET ${flag} = true WHERE budget_id = $1 AND period_start = $2`, [budget.id, budget.periodStart]);
          await this.alerts.enqueue(client, tenantId, state, 'threshold', percent);
        }
      }
      if (!budget.tripped && !budget.lifted && spent >= hardLimit(budget)) await this.trip(client, tenantId, state);
    }
  }

  private async trip(client: PoolClient, tenantId: string, budget: BudgetState): Promise<void> {
    const { rowCount } = await client.query(
      `INSERT INTO billing.budget_periods (budget_id, period_start, period_end, tenant_id, tripped_at) VALUES ($1, $2, $3, $4, now())
       ON CONFLICT (budget_id, period_start) DO UPDATE SET tripped_at = coalesce(budget_periods.tripped_at, now())
       WHERE budget_periods.tripped_at IS NULL`,
      [budget.id, budget.periodStart, budget.periodEnd, tenantId],
    );
    if (!rowCount) return;
    await this.alerts.enqueue(client, tenantId, budget, 'kill_switch', budget.hardLimitPercent);
    this.killSwitch.afterCommit({ tenantId, scope: budget.scope, subject: budget.subject, until: budget.periodEnd });
  }
}
