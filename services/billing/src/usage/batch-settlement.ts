import { Inject, Injectable } from '@nestjs/common';
import { v7 as uuidV7 } from 'uuid';
import type { PoolClient } from '@ai-platform/platform';
import { costMicros, withMarkup } from '@ai-platform/pricing';
import { BudgetService, type Spend } from '../budgets/budget.service';
import { Ledger, type TenantAccount } from '../ledger/ledger';
import { MeterReporter } from '../stripe/meter-reporter';
import type { ValidUsage } from './usage-event';
import { UsageSettlement } from './usage-settlement';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Settles many usage events in the caller's one transaction with a constant
 * number of statements, with the same effect as UsageSettlement.apply event by
 * event: tenant accounts and the referenced reservations are locked (sorted,
 * so concurrent batches cannot deadlock), usage records are inserted in bulk
 * (event_id unique: a duplicate is skipped and charges nothing), reservations
 * are settled by the sum of their new usage, and each tenant gets one ledger
 * transaction (`usage`, reference `batch:<settled at>:<first event id>`) for the batch.
 * Transaction ids (uuid v7) and references lead with the time, so the 2,000
 * transactions of a wide chunk land on the right edge of their indexes.
 * Events of an expired reservation take the one-by-one path (refund logic).
 * Every statement is named, so each pooled connection parses and plans it once:
 * under a steady flow a chunk holds only a handful of events, and planning them
 * afresh for each chunk cost ~15% of the flow's Postgres CPU (bench/results/billing.md).
 */
@Injectable()
export class BatchSettlement {
  constructor(
    @Inject(Ledger) private readonly ledger: Ledger,
    @Inject(BudgetService) private readonly budgets: BudgetService,
    @Inject(UsageSettlement) private readonly single: UsageSettlement,
  ) {}

  async apply(client: PoolClient, events: ValidUsage[]): Promise<void> {
    if (events.length === 0) return;
    const accounts = await this.lockAccounts(client, [...new Set(events.map((event) => event.tenantId))].sort());
    const refs = [...new Set(events.filter((event) => UUID.test(event.reservationRef)).map((event) => event.reservationRef.toLowerCase()))].sort();
    const reservations = new Map<string, { tenant: string; status: string }>();
    if (refs.length) {
      const { rows } = await client.query<{ id: string; tenant_id: string; status: string }>({
        name: 'billing.batch.lock_reservations',
        text: `SELECT id, tenant_id, status FROM billing.reservations WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`,
        values: [refs],
      });
      for (const row of rows) reservations.set(row.id, { tenant: row.tenant_id, status: row.status });
    }
    const fast: Array<{ usage: ValidUsage; cost: bigint; reservationId: string | null }> = [];
    const slow: ValidUsage[] = [];
    for (const usage of events) {
      const ref = usage.reservationRef.toLowerCase();
      const reservation = reservations.get(ref);
      const reservationId = reservation && reservation.tenant === usage.tenantId ? ref : null;
      if (reservationId && reservation!.status === 'expired') slow.push(usage);
      else fast.push({ usage, reservationId, cost: BigInt(withMarkup(costMicros(usage.price, usage), accounts.get(usage.tenantId)!.markupBps)) });
    }

    const txnIds = new Map<string, string>();
    for (const item of fast) if (!txnIds.has(item.usage.tenantId)) txnIds.set(item.usage.tenantId, uuidV7());
    const col = <T>(pick: (item: (typeof fast)[number]) => T) => fast.map(pick);
    const inserted = fast.length
      ? await client.query<{ event_id: string }>({
          name: 'billing.batch.insert_usage_records',
          text: `INSERT INTO billing.usage_records
             (event_id, tenant_id, user_id, api_key_id, request_id, conversation_id, reservation_id, reservation_ref, model, engine_id, priority,
              input_tokens, cached_input_tokens, output_tokens, input_price_micros, cached_input_price_micros, output_price_micros,
              cost_micros, reported_cost_micros, status, occurred_at, started_at, finished_at, price_version_id, markup_bps, tool_calls, embedding_tokens,
              balance_change_micros, ledger_transaction_id)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::uuid[], $8::text[], $9::text[], $10::text[], $11::text[],
              $12::int[], $13::int[], $14::int[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[], $19::bigint[], $20::text[], $21::timestamptz[],
              $22::timestamptz[], $23::timestamptz[], $24::bigint[], $25::int[], $26::int[], $27::int[], $28::bigint[], $29::uuid[])
           ON CONFLICT (event_id) DO NOTHING
           RETURNING event_id`,
          values: [
            col((i) => i.usage.eventId), col((i) => i.usage.tenantId), col((i) => i.usage.userId), col((i) => i.usage.apiKeyId), col((i) => i.usage.requestId),
            col((i) => i.usage.conversationId), col((i) => i.reservationId), col((i) => i.usage.reservationRef), col((i) => i.usage.model),
            col((i) => i.usage.engineId), col((i) => i.usage.priority), col((i) => i.usage.inputTokens), col((i) => i.usage.cachedInputTokens),
            col((i) => i.usage.outputTokens), col((i) => i.usage.price.inputMicrosPerMillion), col((i) => i.usage.price.cachedInputMicrosPerMillion),
            col((i) => i.usage.price.outputMicrosPerMillion), col((i) => i.cost.toString()), col((i) => i.usage.reportedCostMicros.toString()),
            col((i) => i.usage.status), col((i) => i.usage.occurredAt), col((i) => i.usage.startedAt ?? null), col((i) => i.usage.finishedAt ?? null),
            col((i) => i.usage.price.version ?? null), col((i) => accounts.get(i.usage.tenantId)!.markupBps), col((i) => i.usage.toolCalls),
            col((i) => i.usage.embeddingTokens), col((i) => (-i.cost).toString()), col((i) => (i.cost === 0n ? null : txnIds.get(i.usage.tenantId)!)),
          ],
        })
      : { rows: [] };
    const fresh = new Set(inserted.rows.map((row) => row.event_id));
    // Only the first of several messages carrying one event id was inserted (and is charged).
    const applied = fast.filter((item) => fresh.delete(item.usage.eventId));

    const byTenant = new Map<string, { total: bigint; first: string; spends: Spend[] }>();
    const byReservation = new Map<string, bigint>();
    for (const item of applied) {
      const tenant = byTenant.get(item.usage.tenantId) ?? { total: 0n, first: item.usage.eventId, spends: [] };
      tenant.total += item.cost;
      tenant.spends.push({ userId: item.usage.userId, apiKeyId: item.usage.apiKeyId, micros: item.cost });
      byTenant.set(item.usage.tenantId, tenant);
      if (item.reservationId) byReservation.set(item.reservationId, (byReservation.get(item.reservationId) ?? 0n) + item.cost);
    }
    if (byReservation.size) {
      await client.query({
        name: 'billing.batch.settle_reservations',
        text: `UPDATE billing.reservations r
            SET status = CASE WHEN r.status IN ('held', 'released') THEN 'settled' ELSE r.status END,
                settled_micros = r.settled_micros + d.cost, closed_at = coalesce(r.closed_at, now()), updated_at = now()
           FROM unnest($1::uuid[], $2::bigint[]) AS d(id, cost) WHERE r.id = d.id`,
        values: [[...byReservation.keys()], [...byReservation.values()].map(String)],
      });
    }
    const charged = [...byTenant.entries()].filter(([, tenant]) => tenant.total !== 0n);
    if (charged.length) {
      const revenue = await this.ledger.systemAccountId(client, 'revenue');
      const ids = charged.map(([tenantId]) => txnIds.get(tenantId)!);
      await client.query({
        name: 'billing.batch.insert_ledger_transactions',
        text: `INSERT INTO billing.ledger_transactions (id, tenant_id, kind, reference, description)
         SELECT id, tenant, 'usage', 'batch:' || $5::text || ':' || first, 'usage of ' || n || ' model calls' FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[]) AS t(id, tenant, first, n)`,
        values: [ids, charged.map(([tenantId]) => tenantId), charged.map(([, tenant]) => tenant.first), charged.map(([, tenant]) => tenant.spends.length), new Date().toISOString()],
      });
      await client.query({
        name: 'billing.batch.insert_ledger_entries',
        text: `INSERT INTO billing.ledger_entries (transaction_id, tenant_id, account_id, amount_micros)
         SELECT id, tenant, account, amount FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[]) AS e(id, tenant, account, amount)`,
        values: [
          [...ids, ...ids], [...charged.map(([t]) => t), ...charged.map(([t]) => t)],
          [...charged.map(([t]) => accounts.get(t)!.id), ...charged.map(() => revenue)],
          [...charged.map(([, tenant]) => (-tenant.total).toString()), ...charged.map(([, tenant]) => tenant.total.toString())],
        ],
      });
    }
    for (const [tenantId, tenant] of byTenant) {
      if (accounts.get(tenantId)!.hasBudgets) await this.budgets.recordSpend(client, tenantId, tenant.spends);
    }
    await MeterReporter.addPending(client, [...byTenant.entries()].map(([tenantId, tenant]) => ({ tenantId, micros: tenant.total })));
    for (const usage of slow) await this.single.apply(client, usage);
  }

  private async lockAccounts(client: PoolClient, tenants: string[]): Promise<Map<string, TenantAccount>> {
    const { rows } = await client.query<{ id: string; tenant_id: string; markup_bps: number; has_budgets: boolean; currency: string }>({
      name: 'billing.batch.lock_accounts',
      text: `SELECT id, tenant_id, markup_bps, has_budgets, currency FROM billing.accounts WHERE tenant_id = ANY($1::text[]) ORDER BY tenant_id FOR UPDATE`,
      values: [tenants],
    });
    const accounts = new Map(rows.map((row) => [row.tenant_id, { id: row.id, markupBps: row.markup_bps, hasBudgets: row.has_budgets, currency: row.currency }]));
    const missing = tenants.filter((tenantId) => !accounts.has(tenantId));
    if (missing.length) for (const [tenantId, account] of await this.ledger.lockNewTenants(client, missing)) accounts.set(tenantId, account);
    for (const tenantId of tenants) if (!accounts.has(tenantId)) throw new Error(`account of tenant ${tenantId} vanished`);
    return accounts;
  }
}
