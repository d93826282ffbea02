import { Inject, Injectable } from '@nestjs/common';
import { withTenantTransaction, type Pool } from '@ai-platform/platform';
import { AlertSender } from '../budgets/alert-sender';
import { BudgetService, type BudgetState } from '../budgets/budget.service';
import { KillSwitch } from '../budgets/kill-switch';
import type { BudgetPeriod, BudgetScope } from '../budgets/periods';
import { PG_POOL } from '../infra/tokens';
import { Ledger } from '../ledger/ledger';
import { toBigInt } from '../ledger/money';
import { StripeCustomers } from '../stripe/customers';

export interface BudgetInput {
  tenantId: string;
  scope: BudgetScope;
  subject: string;
  period: BudgetPeriod;
  limitMicros: bigint;
  hardLimitPercent: number;
}

export interface TenantSettings {
  markupBps?: number;
  currency?: string;
  alertWebhookUrl?: string;
  alertWebhookSecret?: string;
  autoTopUpThresholdMicros?: bigint;
  autoTopUpAmountMicros?: bigint;
  autoTopUpPaymentMethod?: string;
}

/** Budgets, the kill switch and tenant settings: operator writes. */
@Injectable()
export class AdminOperations {
  constructor(
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(Ledger) private readonly ledger: Ledger,
    @Inject(BudgetService) private readonly budgets: BudgetService,
    @Inject(KillSwitch) private readonly killSwitch: KillSwitch,
    @Inject(AlertSender) private readonly alerts: AlertSender,
    @Inject(StripeCustomers) private readonly customers: StripeCustomers,
  ) {}

  async setBudget(input: BudgetInput, remove: boolean): Promise<void> {
    await withTenantTransaction(this.pool, input.tenantId, async (client) => {
      await this.ledger.lockTenantAccount(client, input.tenantId);
      if (remove) {
        await client.query(`DELETE FROM billing.budgets WHERE tenant_id = $1 AND scope = $2 AND subject = $3 AND period = $4`, [input.tenantId, input.scope, input.subject, input.period]);
      } else {
        await client.query(
          `INSERT INTO billing.budgets (tenant_id, scope, subject, period, limit_micros, hard_limit_percent) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (tenant_id, scope, subject, period) DO UPDATE SET limit_micros = EXCLUDED.limit_micros, hard_limit_percent = EXCLUDED.hard_limit_percent`,
          [input.tenantId, input.scope, input.subject, input.period, input.limitMicros.toString(), input.hardLimitPercent],
        );
      }
      await client.query(`UPDATE billing.accounts SET has_budgets = EXISTS (SELECT 1 FROM billing.budgets WHERE tenant_id = $1) WHERE tenant_id = $1`, [input.tenantId]);
    });
    await this.killSwitch.reconcile();
  }

  /** Every budget of the tenant with its current period's spend and holds. */
  async listBudgets(tenantId: string): Promise<Array<BudgetState & { heldMicros: bigint }>> {
    return withTenantTransaction(this.pool, tenantId, async (client) => {
      const { rows } = await client.query(`SELECT DISTINCT scope, subject FROM billing.budgets WHERE tenant_id = $1`, [tenantId]);
      const seen = new Map<string, BudgetState & { heldMicros: bigint }>();
      for (const row of rows) {
        // '' matches no user or key budget (their subject is never empty; Postgres text cannot hold NUL).
        const states = await this.budgets.applicable(client, tenantId, row.scope === 'user' ? row.subject : '', row.scope === 'api_key' ? row.subject : '');
        for (const state of states) {
          if (seen.has(state.id)) continue;
          const held = await client.query(
            state.scope === 'tenant'
              ? `SELECT held_micros AS h FROM billing.accounts WHERE tenant_id = $1 AND kind = 'tenant'`
              : `SELECT held_micros AS h FROM billing.budget_subject_holds WHERE tenant_id = $1 AND scope = $2 AND subject = $3`,
            state.scope === 'tenant' ? [tenantId] : [tenantId, state.scope, state.subject],
          );
          seen.set(state.id, { ...state, heldMicros: toBigInt(held.rows[0]?.h) });
        }
      }
      return [...seen.values()];
    });
  }

  /** Lifts tripped switches of the current period (all of the tenant's when scope is empty). */
  async lift(tenantId: string, scope?: BudgetScope, subject?: string, period?: BudgetPeriod): Promise<number> {
    const states = (await this.listBudgets(tenantId)).filter(
      (state) => state.tripped && !state.lifted && (!scope || state.scope === scope) && (subject === undefined || !scope || state.subject === subject) && (!period || state.period === period),
    );
    await withTenantTransaction(this.pool, tenantId, async (client) => {
      for (const state of states) {
        await client.query(`UPDATE billing.budget_periods SET lifted_at = now() WHERE budget_id = $1 AND period_start = $2`, [state.id, state.periodStart]);
        await this.alerts.enqueue(client, tenantId, state, 'kill_switch_lifted', state.hardLimitPercent, `_${Date.now()}`);
      }
    });
    for (const state of states) await this.killSwitch.lifted(tenantId, state.scope, state.subject);
    return states.length;
  }

  async setTenantSettings(tenantId: string, settings: TenantSettings): Promise<string> {
    await withTenantTransaction(this.pool, tenantId, async (client) => {
      await this.ledger.lockTenantAccount(client, tenantId);
      await client.query(
        `UPDATE billing.accounts SET
           markup_bps = coalesce($2, markup_bps), currency = coalesce($3, currency),
           alert_webhook_url = coalesce($4, alert_webhook_url), alert_webhook_secret = coalesce($5, alert_webhook_secret),
           auto_topup_threshold_micros = coalesce($6, auto_topup_threshold_micros), auto_topup_amount_micros = coalesce($7, auto_topup_amount_micros),
           auto_topup_payment_method = coalesce($8, auto_topup_payment_method)
         WHERE tenant_id = $1`,
        [
          tenantId, settings.markupBps ?? null, settings.currency?.toLowerCase() ?? null, settings.alertWebhookUrl ?? null, settings.alertWebhookSecret ?? null,
          settings.autoTopUpThresholdMicros?.toString() ?? null, settings.autoTopUpAmountMicros?.toString() ?? null, settings.autoTopUpPaymentMethod ?? null,
        ],
      );
    });
    return settings.autoTopUpPaymentMethod ? this.customers.customerOf(tenantId) : '';
  }
}
