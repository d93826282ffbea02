import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, LOGGER, withTenantTransaction, type Logger, type Pool } from '@ai-platform/platform';
import { withMarkup, worstCaseCostMicros, type PriceTable } from '@ai-platform/pricing';
import { BudgetExceededError, BudgetService } from '../budgets/budget.service';
import { periodBounds } from '../budgets/periods';
import type { BillingConfig } from '../config';
import { PG_POOL, PRICE_TABLE } from '../infra/tokens';
import { Ledger } from '../ledger/ledger';
import { formatCredits } from '../ledger/money';

export interface ReserveInput {
  tenantId: string;
  userId: string;
  apiKeyId: string;
  requestId: string;
  model: string;
  inputTokens: number;
  maxOutputTokens: number;
}

export interface Reservation {
  reservationId: string;
  amountMicros: bigint;
  /** What the tenant can still reserve after this hold. */
  availableMicros: bigint;
  expiresAt: Date;
}

export type ReservationStatus = 'held' | 'settled' | 'released' | 'expired';

/** Credit does not cover the worst case of the request. */
export class InsufficientCreditError extends Error {
  constructor(
    readonly requiredMicros: bigint,
    readonly availableMicros: bigint,
    readonly balanceMicros: bigint,
    readonly heldMicros: bigint,
    input: ReserveInput,
  ) {
    super(
      `insufficient credit: this request needs up to ${formatCredits(requiredMicros)} (${requiredMicros} micros: ` +
        `${input.inputTokens} input + ${input.maxOutputTokens} max output tokens of ${input.model}) ` +
        `but only ${formatCredits(availableMicros)} (${availableMicros} micros) is available ` +
        `(balance ${formatCredits(balanceMicros)}, ${formatCredits(heldMicros)} held by requests in flight). ` +
        `Top up the tenant's credits, or lower max_tokens or the prompt size.`,
    );
  }
}

export class ReservationNotFoundError extends Error {
  constructor(reservationId: string) {
    super(`reservation ${reservationId} not found`);
  }
}

export const MAX_TOKENS_PER_REQUEST = 10_000_000;

@Injectable()
export class ReservationService {
  constructor(
    @Inject(CONFIG) private readonly config: BillingConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(PG_POOL) private readonly pool: Pool,
    @Inject(PRICE_TABLE) private readonly prices: PriceTable,
    @Inject(Ledger) private readonly ledger: Ledger,
    @Inject(BudgetService) private readonly budgets: BudgetService,
  ) {}

  /**
   * Holds the worst-case cost of a request. In one transaction with the
   * tenant's account row locked: available = balance − open holds; the hold is
   * taken only when it fits, so concurrent reserves can never overspend.
   */
  async reserve(input: ReserveInput): Promise<Reservation> {
    const price = this.prices.get(input.model);
    if (!price) throw new RangeError(`unknown model "${input.model}"`);
    const base = worstCaseCostMicros(price, input.inputTokens, input.maxOutputTokens);
    // Fast path, one round trip: billing.reserve_hold does lock + position + check + insert,
    // and admits against budgets too (migrations 003, 012). A new tenant, or a request that a
    // budget would refuse, takes the full transaction below, which words the refusal and trips
    // the kill switch. A named statement is parsed and planned once per connection, not on every call.
    const now = new Date();
    const { rows: fast } = await this.pool.query<{ outcome: string; reservation_id: string; amount_micros: string; balance_micros: string; held_micros: string; expires_at: Date }>({
      name: 'billing.reserve_hold',
      text: `SELECT * FROM billing.reserve_hold($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
      values: [
        input.tenantId, input.userId, input.apiKeyId, input.requestId, input.model, input.inputTokens, input.maxOutputTokens,
        price.inputMicrosPerMillion, price.cachedInputMicrosPerMillion, price.outputMicrosPerMillion, base, this.config.RESERVATION_TTL_SECONDS, price.version ?? null,
        periodBounds('day', now).start, periodBounds('month', now).start,
      ],
    });
    const quick = fast[0]!;
    if (quick.outcome === 'held' || quick.outcome === 'insufficient') {
      const amount = BigInt(quick.amount_micros);
      const available = BigInt(quick.balance_micros) - BigInt(quick.held_micros);
      if (quick.outcome === 'insufficient') throw new InsufficientCreditError(amount, available, BigInt(quick.balance_micros), BigInt(quick.held_micros), input);
      return { reservationId: quick.reservation_id, amountMicros: amount, availableMicros: available - amount, expiresAt: quick.expires_at };
    }
    const outcome = await withTenantTransaction(this.pool, input.tenantId, async (client) => {
      const account = await this.ledger.lockTenant(client, input.tenantId);
      const amount = BigInt(withMarkup(base, account.markupBps));
      const { balanceMicros, heldMicros } = await this.ledger.position(client, input.tenantId, account.id);
      const available = balanceMicros - heldMicros;
      if (amount > available) throw new InsufficientCreditError(amount, available, balanceMicros, heldMicros, input);
      if (account.hasBudgets) {
        try {
          await this.budgets.check(client, input.tenantId, input.userId, input.apiKeyId, amount);
        } catch (error) {
          // A refusal that tripped the kill switch commits the trip, then refuses.
          if (error instanceof BudgetExceededError && error.tripped) return { refused: error };
          throw error;
        }
      }
      const { rows } = await client.query<{ id: string; expires_at: Date }>(
        `INSERT INTO billing.reservations
           (tenant_id, user_id, api_key_id, request_id, model, input_tokens, max_output_tokens,
            input_price_micros, cached_input_price_micros, output_price_micros, amount_micros, expires_at, price_version_id, markup_bps)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now() + make_interval(secs => $12), $13, $14)
         RETURNING id, expires_at`,
        [
          input.tenantId, input.userId, input.apiKeyId, input.requestId, input.model, input.inputTokens, input.maxOutputTokens,
          price.inputMicrosPerMillion, price.cachedInputMicrosPerMillion, price.outputMicrosPerMillion, amount.toString(),
          this.config.RESERVATION_TTL_SECONDS, price.version ?? null, account.markupBps,
        ],
      );
      const row = rows[0]!;
      return { reservation: { reservationId: row.id, amountMicros: amount, availableMicros: available - amount, expiresAt: row.expires_at } };
    });
    if ('refused' in outcome) {
      await this.budgets.afterCommit();
      throw outcome.refused;
    }
    return outcome.reservation;
  }

  /**
   * Frees a hold that no model call will settle. Returns true when the
   * reservation is released (now or by an earlier call), false when it was
   * already settled or expired: then there is nothing left to free.
   */
  async release(reservationId: string, reason: string, callerTenantId?: string): Promise<boolean> {
    const { rows } = await this.pool.query<{ tenant_id: string | null }>(`SELECT billing.reservation_tenant($1) AS tenant_id`, [reservationId]);
    const tenantId = rows[0]?.tenant_id;
    // A caller acting for another tenant learns nothing about the reservation.
    if (!tenantId || (callerTenantId && callerTenantId !== tenantId)) throw new ReservationNotFoundError(reservationId);
    return withTenantTransaction(this.pool, tenantId, async (client) => {
      // The account row first, as every writer of reservations locks them: closing the
      // hold updates the row's held_micros (migration 010), and the same order everywhere
      // means no deadlock with a usage batch that settles this reservation.
      await this.ledger.lockTenant(client, tenantId);
      const current = await client.query<{ status: ReservationStatus }>(
        `SELECT status FROM billing.reservations WHERE id = $1 AND tenant_id = $2 FOR UPDATE`,
        [reservationId, tenantId],
      );
      const status = current.rows[0]?.status;
      if (!status) throw new ReservationNotFoundError(reservationId);
      if (status === 'released') return true;
      if (status !== 'held') return false;
      await client.query(
        `UPDATE billing.reservations SET status = 'released', release_reason = $2, closed_at = now(), updated_at = now() WHERE id = $1`,
        [reservationId, reason],
      );
      this.logger.debug({ reservation_id: reservationId, tenant_id: tenantId, reason }, 'reservation released');
      return true;
    });
  }
}
