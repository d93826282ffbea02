import { createHash, timingSafeEqual } from 'node:crypto';
import { Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { ApiError, CONFIG } from '@ai-platform/platform';
import { IdentityStore } from '../auth/identity.store';
import { SCOPES } from '../auth/principal';
import type { GatewayConfig } from '../config';
import { tierSchema } from '../limits/limit-config';
import { parseBody } from '../product/schemas';

const id = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1 to 64 letters, digits, _ or -');
export const createTenantRequest = z.object({ id: id.optional(), name: z.string().min(1).max(200), tier: z.string().min(1).max(64).optional(), limits: tierSchema.partial().optional() }).strict();
export const updateLimitsRequest = z.object({ tier: z.string().min(1).max(64).optional(), limits: tierSchema.partial().nullable().optional() }).strict();
export const createUserRequest = z.object({ id: id.optional(), email: z.email().max(320).optional() }).strict();
export const createKeyRequest = z.object({
  user_id: id, name: z.string().max(200).optional(), scopes: z.array(z.enum(SCOPES)).max(SCOPES.length).optional(), expires_at: z.iso.datetime({ offset: true }).optional(),
}).strict();

const digest = (value: string) => createHash('sha256').update(value).digest();

/**
 * Operator API: tenants, their users and keys, and their rate-limit tier.
 * Guarded by `Authorization: Bearer <ADMIN_TOKEN>` (compared in constant time);
 * without ADMIN_TOKEN configured every route answers 404.
 */
@Controller('admin')
export class AdminController {
  constructor(
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(IdentityStore) private readonly identities: IdentityStore,
  ) {}

  private guard(request: FastifyRequest): void {
    if (!this.config.ADMIN_TOKEN) throw ApiError.notFound('Not found');
    const match = /^Bearer\s+(\S{1,512})$/i.exec(request.headers.authorization ?? '');
    if (!match || !timingSafeEqual(digest(match[1]!), digest(this.config.ADMIN_TOKEN))) throw ApiError.unauthorized('Invalid admin credential.', 'invalid_admin_token');
  }

  private validTier(tier: string | undefined): void {
    if (tier !== undefined && !(tier in this.config.RATE_LIMIT_TIERS)) throw ApiError.badRequest(`unknown tier ${JSON.stringify(tier)}`, 'tier');
  }

  private async tenantOr404(tenantId: string) {
    const tenant = await this.identities.tenant(tenantId);
    if (!tenant) throw ApiError.notFound(`tenant ${tenantId.slice(0, 64)} not found`, 'tenant_not_found');
    return tenant;
  }

  @Post('tenants')
  async createTenant(@Req() request: FastifyRequest) {
    this.guard(request);
    const body = parseBody(createTenantRequest, request.body);
    this.validTier(body.tier);
    const tenantId = body.id ?? IdentityStore.newId('tenant');
    if (!(await this.identities.createTenant(tenantId, body.name, body.tier ?? 'default', body.limits))) {
      throw new ApiError(409, 'conflict_error', `tenant ${tenantId} already exists`, 'tenant_exists', 'id');
    }
    return { id: tenantId, object: 'tenant', name: body.name, tier: body.tier ?? 'default', limits: body.limits ?? null };
  }

  @Get('tenants/:tenant')
  async getTenant(@Req() request: FastifyRequest, @Param('tenant') tenantId: string) {
    this.guard(request);
    const tenant = await this.tenantOr404(tenantId);
    return { ...tenant, object: 'tenant', keys: await this.identities.listKeys(tenantId) };
  }

  @Put('tenants/:tenant/limits')
  async setLimits(@Req() request: FastifyRequest, @Param('tenant') tenantId: string) {
    this.guard(request);
    const body = parseBody(updateLimitsRequest, request.body);
    this.validTier(body.tier);
    if (!(await this.identities.updateTenantLimits(tenantId, body.tier, body.limits ?? null))) throw ApiError.notFound(`tenant ${tenantId.slice(0, 64)} not found`, 'tenant_not_found');
    return { ...(await this.tenantOr404(tenantId)), object: 'tenant' };
  }

  @Post('tenants/:tenant/users')
  async createUser(@Req() request: FastifyRequest, @Param('tenant') tenantId: string) {
    this.guard(request);
    const body = parseBody(createUserRequest, request.body);
    await this.tenantOr404(tenantId);
    const userId = body.id ?? IdentityStore.newId('user');
    if (!(await this.identities.createUser(tenantId, userId, body.email ?? null))) {
      throw new ApiError(409, 'conflict_error', `user ${userId} or email already exists`, 'user_exists', 'id');
    }
    return { id: userId, object: 'user', tenant_id: tenantId, email: body.email ?? null };
  }

  /** The key is in the answer once; only its hash is stored. */
  @Post('tenants/:tenant/keys')
  async createKey(@Req() request: FastifyRequest, @Param('tenant') tenantId: string) {
    this.guard(request);
    const body = parseBody(createKeyRequest, request.body);
    await this.tenantOr404(tenantId);
    if (!(await this.identities.userExists(tenantId, body.user_id))) throw ApiError.notFound(`user ${body.user_id} not found in tenant ${tenantId}`, 'user_not_found', 'user_id');
    const expiresAt = body.expires_at ? new Date(body.expires_at) : undefined;
    if (expiresAt && expiresAt.getTime() <= Date.now()) throw ApiError.badRequest('expires_at must be in the future', 'expires_at');
    const created = await this.identities.createKey(tenantId, body.user_id, { name: body.name, scopes: body.scopes, expiresAt });
    return { id: created.id, object: 'api_key', key: created.key, tenant_id: tenantId, user_id: body.user_id, scopes: body.scopes ?? [], expires_at: expiresAt?.toISOString() ?? null };
  }

  /** Revocation is read by every replica on the key's next request (no positive cache). */
  @Delete('tenants/:tenant/keys/:key')
  @HttpCode(200)
  async revokeKey(@Req() request: FastifyRequest, @Param('tenant') tenantId: string, @Param('key') keyId: string) {
    this.guard(request);
    if (!(await this.identities.revokeKey(tenantId, keyId))) throw ApiError.notFound(`key ${keyId.slice(0, 64)} not found`, 'key_not_found');
    return { id: keyId, object: 'api_key', revoked: true };
  }
}
