import { Inject, Injectable } from '@nestjs/common';
import { CONFIG, type Redis } from '@ai-platform/platform';
import type { GatewayConfig } from '../config';
import { GatewayRedis } from '../redis/gateway-redis';

export interface StoredResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export type BeginResult =
  | { kind: 'new' }
  | { kind: 'in_flight' }
  | { kind: 'mismatch' }
  | { kind: 'replay'; response: StoredResponse };

// Claims the key for a new request, or reports what it already holds.
const BEGIN_LUA = String.raw`
local existing = redis.call('HMGET', KEYS[1], 'fp', 'state', 'status', 'headers', 'body')
if not existing[1] then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'running')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'new'}
end
if existing[1] ~= ARGV[1] then return {'mismatch'} end
if existing[2] == 'running' then return {'in_flight'} end
return {'replay', existing[3], existing[4], existing[5]}
`;

type IdemRedis = Redis & { idemBegin(key: string, fingerprint: string, lockMs: number): Promise<string[]> };

/**
 * Idempotency keys in Redis, scoped by tenant: the first request with a key
 * claims it; its successful response (status, headers and the exact bytes,
 * a stream included) is stored for IDEMPOTENCY_TTL_S and replayed to repeats.
 */
@Injectable()
export class IdempotencyStore {
  private readonly redis: IdemRedis;

  constructor(
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(GatewayRedis) redis: GatewayRedis,
  ) {
    this.redis = redis.client as IdemRedis;
    this.redis.defineCommand('idemBegin', { numberOfKeys: 1, lua: BEGIN_LUA });
  }

  static redisKey(tenantId: string, key: string): string {
    return `idem:{${tenantId}}:${key}`;
  }

  async begin(redisKey: string, fingerprint: string): Promise<BeginResult> {
    const [kind, status, headers, body] = await this.redis.idemBegin(redisKey, fingerprint, this.config.IDEMPOTENCY_LOCK_S * 1000);
    if (kind === 'replay') {
      return { kind, response: { status: Number(status), headers: JSON.parse(headers!), body: Buffer.from(body!, 'base64') } };
    }
    return { kind: kind as 'new' | 'in_flight' | 'mismatch' };
  }

  async complete(redisKey: string, response: StoredResponse): Promise<void> {
    await this.redis
      .multi()
      .hset(redisKey, 'state', 'done', 'status', String(response.status), 'headers', JSON.stringify(response.headers), 'body', response.body.toString('base64'))
      .expire(redisKey, this.config.IDEMPOTENCY_TTL_S)
      .exec();
  }

  /** Frees the key after a failure that spent nothing, so the client may retry with it. */
  async abandon(redisKey: string): Promise<void> {
    await this.redis.del(redisKey);
  }
}
