import { timingSafeEqual } from 'node:crypto';
import { Controller, Get, Inject, Post, Req, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { ApiError, LOGGER, runWithContext, type Logger } from '@ai-platform/platform';
import { authenticate } from '../auth/authenticate';
import { IdentityStore } from '../auth/identity.store';
import { toPublicError } from '../openai/chat-turn';
import { UpstreamClients } from '../upstream/upstream.clients';
import { closeKillSwitchGuard, killSwitchGuard } from './kill-switch.guard';
import { registerStripeWebhookRoute } from './stripe-webhook.route';

/** A protobuf message as public JSON: int64 as strings, protobuf-es internals ($typeName, $unknown) left out. */
const json = (value: unknown): unknown =>
  JSON.parse(JSON.stringify(value, (key, v) => (key.startsWith('$') ? undefined : typeof v === 'bigint' ? v.toString() : v)));
const date = (value: unknown, name: string) => {
  if (value === undefined || value === '') return undefined;
  const parsed = new Date(String(value));
  if (!Number.isFinite(parsed.getTime())) throw ApiError.badRequest(`${name} must be an ISO-8601 date`, name);
  return timestampFromDate(parsed);
};

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
    const query = request.query as Record<string, string>;
    return this.call(request, (tenantId) => this.upstream.billing.listHolds({ tenantId, limit: Number(query.limit ?? 100) || 100 }));
  }

  @Get('billing/ledger')
  ledger(@Req() request: FastifyRequest) {
    const query = request.query as Record<string, string>;
    return this.call(request, (tenantId) => this.upstream.billing.listLedgerEntries({ tenantId, limit: Number(query.limit ?? 100) || 100, before: query.before ?? '' }));
  }

  @Get('billing/usage')
  usage(@Req() request: FastifyRequest) {
    const query = request.query as Record<string, string>;
    const groupBy = (query.group_by ?? 'day').split(',').filter(Boolean);
    const from = date(query.from, 'from');
    const to = date(query.to, 'to');
    return this.call(request, (tenantId) => this.upstream.billing.getUsageSummary({ tenantId, groupBy, from, to }));
  }

  @Get('billing/invoice-preview')
  invoice(@Req() request: FastifyRequest) {
    return this.call(request, (tenantId) => this.upstream.billing.getInvoicePreview({ tenantId }));
  }

  @Post('billing/top-ups')
  topUp(@Req() request: FastifyRequest) {
    const body = (request.body ?? {}) as { credits?: unknown; currency?: unknown; success_url?: unknown; cancel_url?: unknown };
    if (typeof body.credits !== 'number' || !Number.isInteger(body.credits) || body.credits < 1) throw ApiError.badRequest('credits must be a positive integer', 'credits');
    return this.call(request, (tenantId) =>
      this.upstream.billing.createTopUpCheckout({
        tenantId, creditsMicros: BigInt(body.credits as number) * 1_000_000n, currency: typeof body.currency === 'string' ? body.currency : '',
        successUrl: typeof body.success_url === 'string' ? body.success_url : '', cancelUrl: typeof body.cancel_url === 'string' ? body.cancel_url : '',
      }),
    );
  }

  @Get('admin/billing/cost-report')
  async costReport(@Req() request: FastifyRequest) {
    requireAdmin(request);
    const query = request.query as Record<string, string>;
    try {
      return json(await this.upstream.billing.getCostReport({ from: date(query.from, 'from'), to: date(query.to, 'to'), limit: Number(query.limit ?? 100) || 100 }));
    } catch (error) {
      throw toPublicError(error);
    }
  }

  @Post('admin/billing/kill-switch/lift')
  async lift(@Req() request: FastifyRequest) {
    requireAdmin(request);
    const body = (request.body ?? {}) as Record<string, string>;
    if (!body.tenant_id) throw ApiError.badRequest('tenant_id is required', 'tenant_id');
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
