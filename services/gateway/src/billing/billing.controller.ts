import { timingSafeEqual } from 'node:crypto';
import { Controller, Get, Inject, Post, Req, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { timestampDate, timestampFromDate, type Timestamp } from '@bufbuild/protobuf/wkt';
import { ApiError, LOGGER, runWithContext, type Logger } from '@ai-platform/platform';
import { authenticate } from '../auth/authenticate';
import { IdentityStore } from '../auth/identity.store';
import { parseBody } from '../edge/parse-body';
import { toPublicError } from '../openai/chat-turn';
import { UpstreamClients } from '../upstream/upstream.clients';
import { billingHoldsQuery, billingLedgerQuery, billingUsageQuery, costReportQuery, liftKillSwitchRequest, topUpRequest } from './billing-schemas';
import { closeKillSwitchGuard, killSwitchGuard } from './kill-switch.guard';
import { registerStripeWebhookRoute } from './stripe-webhook.route';

const isTimestamp = (value: unknown): value is Timestamp => (value as { $typeName?: string } | null)?.$typeName === 'google.protobuf.Timestamp';

/**
 * A protobuf message as public JSON: int64 as strings, timestamps as RFC 3339
 * strings, protobuf-es internals ($typeName, $unknown) left out.
 */
const json = (value: unknown): unknown =>
  JSON.parse(JSON.stringify(value, (key, v) => (key.startsWith('$') ? undefined : typeof v === 'bigint' ? v.toString() : isTimestamp(v) ? timestampDate(v).toISOString() : v)));
const date = (value: string | undefined) => (value === undefined ? undefined : timestampFromDate(new Date(value)));

/**
 * The caller's billing views (`/v1/billing/*`, API key) and operator views
 * (`/v1/admin/billing/*`, `Authorization: Bearer $ADMIN_TOKEN`). Money is
 * returned as integer micro-credit strings, exactly as the ledger holds it.
 */
@Controller('v1')
export class BillingController implements OnModuleInit, OnApplicationShutdown {
  constructor(
    @Inject(IdentityStore) private readonly identities: IdentityStore,
    @Inject(UpstreamClients) private readonly upstream: UpstreamClients,
    @Inject(HttpAdapterHost) private readonly http: HttpAdapterHost,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** The public Stripe webhook route (raw body, its own parser) and the kill-switch guard's Redis client. */
  async onModuleInit(): Promise<void> {
    killSwitchGuard(process.env, this.logger);
    const fastify = this.http.httpAdapter.getInstance<FastifyInstance>();
    await registerStripeWebhookRoute(fastify, (payload, signature) => this.upstream.billing.handleStripeWebhook({ payload, signature }), this.logger);
  }

  onApplicationShutdown(): void {
    closeKillSwitchGuard();
  }

  private async call<T>(request: FastifyRequest, fn: (tenantId: string) => Promise<T>): Promise<unknown> {
    const principal = await authenticate(request, this.identities);
    return runWithContext({ tenantId: principal.tenantId, userId: principal.userId, requestId: request.requestId }, async () => {
      try {
        return json(await fn(principal.tenantId));
      } catch (error) {
        throw toPublicError(error);
      }
    });
  }

  @Get('billing/balance')
  balance(@Req() request: FastifyRequest) {
    return this.call(request, (tenantId) => this.upstream.billing.getBalance({ tenantId }));
  }

  @Get('billing/holds')
  holds(@Req() request: FastifyRequest) {
    return this.call(request, (tenantId) => {
      const query = parseBody(billingHoldsQuery, request.query ?? {}, 'query');
      return this.upstream.billing.listHolds({ tenantId, limit: query.limit ?? 100 });
    });
  }

  @Get('billing/ledger')
  ledger(@Req() request: FastifyRequest) {
    return this.call(request, (tenantId) => {
      const query = parseBody(billingLedgerQuery, request.query ?? {}, 'query');
      return this.upstream.billing.listLedgerEntries({ tenantId, limit: query.limit ?? 100, before: query.before ?? '' });
    });
  }

  @Get('billing/usage')
  usage(@Req() request: FastifyRequest) {
    return this.call(request, (tenantId) => {
      const query = parseBody(billingUsageQuery, request.query ?? {}, 'query');
      return this.upstream.billing.getUsageSummary({ tenantId, groupBy: (query.group_by ?? 'day').split(','), from: date(query.from), to: date(query.to) });
    });
  }

  @Get('billing/invoice-preview')
  invoice(@Req() request: FastifyRequest) {
    return this.call(request, (tenantId) => this.upstream.billing.getInvoicePreview({ tenantId }));
  }

  @Post('billing/top-ups')
  topUp(@Req() request: FastifyRequest) {
    return this.call(request, (tenantId) => {
      const body = parseBody(topUpRequest, request.body);
      return this.upstream.billing.createTopUpCheckout({
        tenantId, creditsMicros: BigInt(body.credits) * 1_000_000n, currency: body.currency ?? '', successUrl: body.success_url ?? '', cancelUrl: body.cancel_url ?? '',
      });
    });
  }

  @Get('admin/billing/cost-report')
  async costReport(@Req() request: FastifyRequest) {
    requireAdmin(request);
    const query = parseBody(costReportQuery, request.query ?? {}, 'query');
    try {
      return json(await this.upstream.billing.getCostReport({ from: date(query.from), to: date(query.to), limit: query.limit ?? 100 }));
    } catch (error) {
      throw toPublicError(error);
    }
  }

  @Post('admin/billing/kill-switch/lift')
  async lift(@Req() request: FastifyRequest) {
    requireAdmin(request);
    const body = parseBody(liftKillSwitchRequest, request.body);
    try {
      return json(await this.upstream.billing.liftKillSwitch({ tenantId: body.tenant_id, scope: body.scope ?? '', subject: body.subject ?? '', period: body.period ?? '' }));
    } catch (error) {
      throw toPublicError(error);
    }
  }
}

/** Operator calls carry `Authorization: Bearer $ADMIN_TOKEN`; without ADMIN_TOKEN configured they are off. */
export function requireAdmin(request: FastifyRequest): void {
  const token = process.env.ADMIN_TOKEN;
  const match = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
  const given = Buffer.from(match?.[1] ?? '');
  const expected = Buffer.from(token ?? '');
  if (!token || given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw ApiError.unauthorized('operator endpoints need Authorization: Bearer <ADMIN_TOKEN>', 'invalid_admin_token');
  }
}
