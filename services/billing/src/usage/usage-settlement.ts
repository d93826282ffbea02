import { Inject, Injectable } from '@nestjs/common';
import { LOGGER, type Logger, type PoolClient } from '@ai-platform/platform';
import { costMicros, withMarkup } from '@ai-platform/pricing';
import { BudgetService } from '../budgets/budget.service';
import { MeterReporter } from '../stripe/meter-reporter';
import { Ledger, type LedgerKind } from '../ledger/ledger';
import { toBigInt } from '../ledger/money';
import type { ReservationStatus } from '../reservations/reservation.service';
import type { ValidUsage } from './usage-event';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface SettlementResult {
  /** False when a usage record with this event id already existed: nothing was done. */
  applied: boolean;
  costMicros: bigint;
  /** Change of the tenant's balance: negative is a charge, positive a refund. */
  balanceChangeMicros: bigint;
  reservationId?: string;
}

/**
 * Books one usage event, in the caller's transaction (the idempotent
 * consumer's, which also records the event id):
 *
 * 1. cost = the price table applied to the reported tokens (never the event's
 *    own cost figure); aborted and failed calls pay for the tokens they report;
 * 2. one usage record per event id;
 * 3. the tenant is charged so that, for a reservation, the total charged in
 *    respect of it (`settled_micros`) equals the sum of the actual costs of its
 *    usage records. That one rule covers every case:
 *    - held → settled: charge the actual cost, the hold disappears;
 *    - already settled (another model call under the same reservation, e.g. a
 *      fallback or an agent step): charge this event's actual cost once;
 *      the hold is never charged on top of it;
 *    - expired (the sweeper charged the full hold): the difference
 *      (held − actual) is refunded, or the excess charged, as an
 *      `expiry_adjustment`, so the final charge equals the actual cost;
 *    - released (the gateway gave the hold up, then usage still came): charge
 *      the actual cost and mark it settled;
 *    Without a reservation (or with an id that matches none of this tenant's)
 *    the actual cost is charged.
 */
@Injectable()
export class UsageSettlement {
  constructor(
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(Ledger) private readonly ledger: Ledger,
    @Inject(BudgetService) private readonly budgets: BudgetService,
  ) {}

  async apply(client: PoolClient, usage: ValidUsage): Promise<SettlementResult> {
    const { tenantId } = usage;
    await client.query(`SELECT set_config('app.tenant_id', $1, true)`, [tenantId]);
    const account = await this.ledger.lockTenant(client, tenantId);
    const accountId = account.id;
    const cost = BigInt(withMarkup(costMicros(usage.price, usage), account.markupBps));
    if (usage.reportedCostMicros !== cost) {
      this.logger.debug({ event_id: usage.eventId, reported: usage.reportedCostMicros.toString(), computed: cost.toString() }, 'usage event cost differs from the price table; billing the price table');
    }

    const reservation = await this.lockReservation(client, usage);
    const inserted = await client.query<{ event_id: string }>(
      `INSERT INTO billing.usage_records
         (event_id, tenant_id, user_id, api_key_id, request_id, conversation_id, reservation_id, reservation_ref, model, engine_id, priority,
          input_tokens, cached_input_tokens, output_tokens, input_price_micros, cached_input_price_micros, output_price_micros,
          cost_micros, reported_cost_micros, status, occurred_at, started_at, finished_at, price_version_id, markup_bps, tool_calls, embedding_tokens)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)
       ON CONFLICT (event_id) DO NOTHING
       RETURNING event_id`,
      [
        usage.eventId, tenantId, usage.userId, usage.apiKeyId, usage.requestId, usage.conversationId, reservation?.id ?? null, usage.reservationRef,
        usage.model, usage.engineId, usage.priority, usage.inputTokens, usage.cachedInputTokens, usage.outputTokens,
        usage.price.inputMicrosPerMillion, usage.price.cachedInputMicrosPerMillion, usage.price.outputMicrosPerMillion,
        cost.toString(), usage.reportedCostMicros.toString(), usage.status, usage.occurredAt, usage.startedAt ?? null, usage.finishedAt ?? null,
        usage.price.version ?? null, account.markupBps, usage.toolCalls, usage.embeddingTokens,
      ],
    );
    const recordId = inserted.rows[0]?.event_id;
    if (!recordId) {
      // Same event id republished under another message id: already billed.
      this.logger.info({ event_id: usage.eventId, tenant_id: tenantId }, 'usage event already recorded; not billed again');
      return { applied: false, costMicros: cost, balanceChangeMicros: 0n, reservationId: reservation?.id };
    }

    let charge = cost;
    let kind: LedgerKind = 'usage';
    if (reservation) {
      const { rows } = await client.query<{ total: string }>(
        `SELECT coalesce(sum(cost_micros), 0) AS total FROM billing.usage_records WHERE reservation_id = $1 AND tenant_id = $2`,
        [reservation.id, tenantId],
      );
      const actualTotal = toBigInt(rows[0]?.total);
      charge = actualTotal - reservation.settledMicros;
      if (reservation.status === 'expired') kind = 'expiry_adjustment';
      await client.query(
        `UPDATE billing.reservations
            SET status = CASE WHEN status IN ('held', 'released') THEN 'settled' ELSE status END,
                settled_micros = $2, closed_at = coalesce(closed_at, now()), updated_at = now()
          WHERE id = $1`,
        [reservation.id, actualTotal.toString()],
      );
    }

    let transactionId: string | null = null;
    if (charge !== 0n) {
      const revenue = await this.ledger.systemAccountId(client, 'revenue');
      transactionId = await this.ledger.transfer(client, {
        tenantId,
        kind,
        reference: usage.eventId,
        description:
          kind === 'usage'
            ? `${usage.model}: ${usage.inputTokens} input (${usage.cachedInputTokens} cached) + ${usage.outputTokens} output tokens, ${usage.status}`
            : `late usage of expired reservation ${reservation!.id}: charge corrected to the actual cost`,
        from: charge > 0n ? accountId : revenue,
        to: charge > 0n ? revenue : accountId,
        amountMicros: charge > 0n ? charge : -charge,
      });
    }
    if (account.hasBudgets && charge !== 0n) await this.budgets.recordSpend(client, tenantId, [{ userId: usage.userId, apiKeyId: usage.apiKeyId, micros: charge }]);
    await MeterReporter.addPending(client, [{ tenantId, micros: cost }]);
    await client.query(`UPDATE billing.usage_records SET balance_change_micros = $2, ledger_transaction_id = $3 WHERE event_id = $1`, [
      recordId, (-charge).toString(), transactionId,
    ]);
    return { applied: true, costMicros: cost, balanceChangeMicros: -charge, reservationId: reservation?.id };
  }

  private async lockReservation(client: PoolClient, usage: ValidUsage): Promise<{ id: string; status: ReservationStatus; settledMicros: bigint } | undefined> {
    if (!usage.reservationRef) return undefined;
    if (UUID.test(usage.reservationRef)) {
      const { rows } = await client.query<{ id: string; status: ReservationStatus; settled_micros: string }>(
        `SELECT id, status, settled_micros FROM billing.reservations WHERE id = $1 AND tenant_id = $2 FOR UPDATE`,
        [usage.reservationRef.toLowerCase(), usage.tenantId],
      );
      const row = rows[0];
      if (row) return { id: row.id, status: row.status, settledMicros: toBigInt(row.settled_micros) };
    }
    // The usage happened all the same: bill it without a reservation, keep the reference for reconciliation.
    this.logger.warn({ event_id: usage.eventId, tenant_id: usage.tenantId, reservation_id: usage.reservationRef }, 'usage event references no reservation of its tenant; billing it without one');
    return undefined;
  }
}
