import { Inject, Injectable } from '@nestjs/common';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { billing } from '@ai-platform/contracts';
import { GrpcError, GrpcStatus, type CallInfo, type ServiceImplementation } from '@ai-platform/platform';
import { PRICE_TABLE } from '../infra/tokens';
import type { PriceTable } from '@ai-platform/pricing';
import { BudgetExceededError } from '../budgets/budget.service';
import type { BudgetPeriod, BudgetScope } from '../budgets/periods';
import { CreditRejectedError, CreditService, type CreditKind } from '../credits/credit.service';
import { PriceBook } from '../prices/price-book';
import { AdminOperations } from '../queries/admin-operations';
import { BillingQueries, isGrouping } from '../queries/billing-queries';
import { TopUpRejectedError, TopUps } from '../stripe/top-ups';
import { StripeWebhooks, WebhookSignatureError } from '../stripe/webhooks';
import { InsufficientCreditError, MAX_TOKENS_PER_REQUEST, ReservationNotFoundError, ReservationService } from './reservation.service';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_ID_LENGTH = 256;

function invalid(message: string): GrpcError {
  return new GrpcError(GrpcStatus.INVALID_ARGUMENT, message);
}

/** gRPC face of billing.v1.BillingService: validation and status codes; the work is in ReservationService. */
@Injectable()
export class BillingGrpcHandler implements ServiceImplementation<typeof billing.BillingService> {
  constructor(
    @Inject(ReservationService) private readonly reservations: ReservationService,
    @Inject(PRICE_TABLE) private readonly prices: PriceTable,
    @Inject(BillingQueries) private readonly queries: BillingQueries,
    @Inject(AdminOperations) private readonly admin: AdminOperations,
    @Inject(CreditService) private readonly credits: CreditService,
    @Inject(TopUps) private readonly topUps: TopUps,
    @Inject(StripeWebhooks) private readonly webhooks: StripeWebhooks,
    @Inject(PriceBook) private readonly priceBook: PriceBook,
  ) {}

  async reserve(request: billing.ReserveRequest, call: CallInfo): Promise<MessageInitShape<typeof billing.ReserveResponseSchema>> {
    if (!request.tenantId) throw invalid('tenant_id is required');
    for (const [name, value] of [['tenant_id', request.tenantId], ['user_id', request.userId], ['api_key_id', request.apiKeyId], ['request_id', request.requestId]] as const) {
      if (value.length > MAX_ID_LENGTH) throw invalid(`${name} must be at most ${MAX_ID_LENGTH} characters`);
    }
    if (call.context.tenantId && call.context.tenantId !== request.tenantId) {
      throw new GrpcError(GrpcStatus.PERMISSION_DENIED, 'tenant_id does not match the x-tenant-id of the call');
    }
    if (!request.model) throw invalid('model is required');
    if (!this.prices.has(request.model)) throw invalid(`unknown model "${request.model}"; known models: ${this.prices.models().join(', ')}`);
    if (request.inputTokens > MAX_TOKENS_PER_REQUEST) throw invalid(`input_tokens must be at most ${MAX_TOKENS_PER_REQUEST}`);
    if (request.maxOutputTokens > MAX_TOKENS_PER_REQUEST) throw invalid(`max_output_tokens must be at most ${MAX_TOKENS_PER_REQUEST}`);
    try {
      const reservation = await this.reservations.reserve({
        tenantId: request.tenantId,
        userId: request.userId,
        apiKeyId: request.apiKeyId,
        requestId: request.requestId,
        model: request.model,
        inputTokens: request.inputTokens,
        maxOutputTokens: request.maxOutputTokens,
      });
      return {
        reservationId: reservation.reservationId,
        amountMicros: reservation.amountMicros,
        availableMicros: reservation.availableMicros,
        expiresAt: timestampFromDate(reservation.expiresAt),
      };
    } catch (error) {
      if (error instanceof InsufficientCreditError || error instanceof BudgetExceededError) throw new GrpcError(GrpcStatus.FAILED_PRECONDITION, error.message);
      throw error;
    }
  }

  async release(request: billing.ReleaseRequest, call: CallInfo): Promise<MessageInitShape<typeof billing.ReleaseResponseSchema>> {
    if (!request.reservationId) throw invalid('reservation_id is required');
    if (!UUID.test(request.reservationId)) throw invalid('reservation_id must be a UUID');
    try {
      const released = await this.reservations.release(request.reservationId.toLowerCase(), request.reason.slice(0, 500), call.context.tenantId);
      return { released };
    } catch (error) {
      if (error instanceof ReservationNotFoundError) throw new GrpcError(GrpcStatus.NOT_FOUND, error.message);
      throw error;
    }
  }

  async getBalance(request: billing.GetBalanceRequest, call: CallInfo) {
    const balance = await this.queries.balance(tenant(request.tenantId, call));
    return { ...balance, nextExpiry: balance.nextExpiry ? timestampFromDate(balance.nextExpiry) : undefined };
  }

  async listHolds(request: billing.ListHoldsRequest, call: CallInfo) {
    const { holds, totalMicros } = await this.queries.holds(tenant(request.tenantId, call), limitOf(request.limit));
    return {
      totalMicros,
      holds: holds.map((row) => ({
        reservationId: row.id, userId: row.user_id, apiKeyId: row.api_key_id, requestId: row.request_id, model: row.model,
        amountMicros: BigInt(row.amount_micros), createdAt: timestampFromDate(row.created_at), expiresAt: timestampFromDate(row.expires_at),
      })),
    };
  }

  async listLedgerEntries(request: billing.ListLedgerEntriesRequest, call: CallInfo) {
    const { rows, balanceMicros, nextCursor } = await this.queries.ledger(tenant(request.tenantId, call), limitOf(request.limit), request.before || undefined);
    return {
      balanceMicros, nextCursor,
      entries: rows.map((row) => ({
        transactionId: row.id, kind: row.kind, reference: row.reference, description: row.description, amountMicros: BigInt(row.amount_micros),
        createdAt: timestampFromDate(row.created_at), cursor: String(row.entry_id),
      })),
    };
  }

  async getUsageSummary(request: billing.GetUsageSummaryRequest, call: CallInfo) {
    const groupBy = [...new Set(request.groupBy)];
    const bad = groupBy.find((name) => !isGrouping(name));
    if (bad !== undefined) throw invalid(`group_by "${bad}" is not one of day, model, user, key`);
    const rows = await this.queries.usage(tenant(request.tenantId, call), groupBy.filter(isGrouping), request.from && timestampDate(request.from), request.to && timestampDate(request.to));
    const groups = rows.map((row) => ({
      day: row.day ?? '', model: row.model ?? '', userId: row.user ?? '', apiKeyId: row.key ?? '', requests: BigInt(row.requests),
      inputTokens: BigInt(row.input_tokens ?? 0), cachedInputTokens: BigInt(row.cached_input_tokens ?? 0), outputTokens: BigInt(row.output_tokens ?? 0), embeddingTokens: BigInt(row.embedding_tokens ?? 0), costMicros: BigInt(row.cost_micros ?? 0),
    }));
    return { groups, totalCostMicros: groups.reduce((sum, g) => sum + g.costMicros, 0n), totalRequests: groups.reduce((sum, g) => sum + g.requests, 0n) };
  }

  async getInvoicePreview(request: billing.GetInvoicePreviewRequest, call: CallInfo) {
    const preview = await this.queries.invoicePreview(tenant(request.tenantId, call));
    return {
      ...preview, periodStart: timestampFromDate(preview.start), periodEnd: timestampFromDate(preview.end),
      lines: preview.lines.map((line) => ({ kind: line.kind, description: line.kind.replace(/_/g, ' '), amountMicros: line.amountMicros, count: line.count })),
    };
  }

  async getCostReport(request: billing.GetCostReportRequest) {
    const rows = await this.queries.costReport(request.from && timestampDate(request.from), request.to && timestampDate(request.to), limitOf(request.limit, 1000));
    const tenants = rows.map((row) => ({
      tenantId: row.tenant_id, requests: BigInt(row.requests), inputTokens: BigInt(row.input_tokens), outputTokens: BigInt(row.output_tokens),
      usageMicros: BigInt(row.usage), balanceMicros: BigInt(row.balance),
    }));
    return { tenants, totalUsageMicros: tenants.reduce((sum, t) => sum + t.usageMicros, 0n) };
  }

  async postCredit(request: billing.PostCreditRequest, call: CallInfo) {
    if (!['grant', 'refund', 'adjustment'].includes(request.kind)) throw invalid('kind must be grant, refund or adjustment');
    try {
      const result = await this.credits.post({
        tenantId: tenant(request.tenantId, call), kind: request.kind as CreditKind, amountMicros: request.amountMicros, reference: request.reference,
        description: request.description || undefined, expiresAt: request.expiresAt && timestampDate(request.expiresAt),
      });
      return { transactionId: result.transactionId ?? '', duplicate: result.duplicate, balanceMicros: result.balanceMicros };
    } catch (error) {
      if (error instanceof CreditRejectedError) throw invalid(error.message);
      throw error;
    }
  }

  async createTopUpCheckout(request: billing.CreateTopUpCheckoutRequest, call: CallInfo) {
    try {
      return await this.topUps.createCheckout(tenant(request.tenantId, call), request.creditsMicros, request.currency, request.successUrl, request.cancelUrl);
    } catch (error) {
      if (error instanceof TopUpRejectedError) throw invalid(error.message);
      throw error;
    }
  }

  async handleStripeWebhook(request: billing.HandleStripeWebhookRequest) {
    try {
      return await this.webhooks.handle(Buffer.from(request.payload), request.signature);
    } catch (error) {
      if (error instanceof WebhookSignatureError) throw invalid(error.message);
      throw error;
    }
  }

  async setBudget(request: billing.SetBudgetRequest, call: CallInfo) {
    const budget = request.budget;
    if (!budget) throw invalid('budget is required');
    const tenantId = tenant(budget.tenantId, call);
    if (!['tenant', 'user', 'api_key'].includes(budget.scope)) throw invalid('scope must be tenant, user or api_key');
    if (!['day', 'month'].includes(budget.period)) throw invalid('period must be day or month');
    if ((budget.scope === 'tenant') !== (budget.subject === '')) throw invalid('subject is the user or key id, and empty for scope tenant');
    const hard = budget.hardLimitPercent || 100;
    if (hard < 100 || hard > 110) throw invalid('hard_limit_percent must be between 100 and 110');
    if (!request.delete && budget.limitMicros <= 0n) throw invalid('limit_micros must be positive');
    const input = { tenantId, scope: budget.scope as BudgetScope, subject: budget.subject, period: budget.period as BudgetPeriod, limitMicros: budget.limitMicros, hardLimitPercent: hard };
    await this.admin.setBudget(input, request.delete);
    return { budget: { ...budget, tenantId, hardLimitPercent: hard } };
  }

  async listBudgets(request: billing.ListBudgetsRequest, call: CallInfo) {
    const budgets = await this.admin.listBudgets(tenant(request.tenantId, call));
    return {
      budgets: budgets.map((b) => ({
        tenantId: request.tenantId, scope: b.scope, subject: b.subject, period: b.period, limitMicros: b.limitMicros, hardLimitPercent: b.hardLimitPercent,
        spentMicros: b.spentMicros, heldMicros: b.heldMicros, tripped: b.tripped, lifted: b.lifted, periodStart: timestampFromDate(b.periodStart), periodEnd: timestampFromDate(b.periodEnd),
      })),
    };
  }

  async liftKillSwitch(request: billing.LiftKillSwitchRequest, call: CallInfo) {
    const lifted = await this.admin.lift(tenant(request.tenantId, call), (request.scope || undefined) as BudgetScope | undefined, request.subject, (request.period || undefined) as BudgetPeriod | undefined);
    return { lifted };
  }

  async setTenantSettings(request: billing.SetTenantSettingsRequest, call: CallInfo) {
    if (request.currency !== undefined && !/^[a-zA-Z]{3}$/.test(request.currency)) throw invalid('currency must be a 3-letter ISO code');
    if (request.markupBps !== undefined && (request.markupBps < 0 || request.markupBps > 100_000)) throw invalid('markup_bps must be between 0 and 100000');
    if (request.alertWebhookUrl !== undefined && !/^https?:\/\//.test(request.alertWebhookUrl)) throw invalid('alert_webhook_url must be an http(s) URL');
    const stripeCustomerId = await this.admin.setTenantSettings(tenant(request.tenantId, call), {
      markupBps: request.markupBps, currency: request.currency, alertWebhookUrl: request.alertWebhookUrl, alertWebhookSecret: request.alertWebhookSecret,
      autoTopUpThresholdMicros: request.autoTopupThresholdMicros, autoTopUpAmountMicros: request.autoTopupAmountMicros, autoTopUpPaymentMethod: request.autoTopupPaymentMethod,
    });
    return { stripeCustomerId };
  }

  async setPrice(request: billing.SetPriceRequest) {
    if (!request.model || request.model.length > MAX_ID_LENGTH) throw invalid('model is required');
    const values = [request.inputMicrosPerMillion, request.cachedInputMicrosPerMillion, request.outputMicrosPerMillion, request.toolCallMicros, request.embeddingMicrosPerMillion];
    if (values.some((value) => value < 0n || value > 1_000_000_000_000n)) throw invalid('prices must be between 0 and 10^12 micros');
    const [input, cached, output, tool, embedding] = values.map(Number) as [number, number, number, number, number];
    const version = await this.priceBook.setPrice({ model: request.model, inputMicrosPerMillion: input, cachedInputMicrosPerMillion: cached, outputMicrosPerMillion: output, toolCallMicros: tool, embeddingMicrosPerMillion: embedding });
    return { version: BigInt(version) };
  }
}

/** The tenant a call acts for: the request's, which must match the call's x-tenant-id when that is set. */
function tenant(requested: string, call: CallInfo): string {
  const id = requested || call.context.tenantId || '';
  if (!id) throw invalid('tenant_id is required');
  if (id.length > MAX_ID_LENGTH) throw invalid(`tenant_id must be at most ${MAX_ID_LENGTH} characters`);
  if (call.context.tenantId && call.context.tenantId !== id) throw new GrpcError(GrpcStatus.PERMISSION_DENIED, 'tenant_id does not match the x-tenant-id of the call');
  return id;
}

const limitOf = (limit: number, max = 500) => (limit > 0 ? Math.min(limit, max) : 100);
