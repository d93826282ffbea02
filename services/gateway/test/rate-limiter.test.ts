import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { ApiError, createLogger, createRedis, type Redis } from '@ai-platform/platform';
import type { Principal } from '../src/auth/principal';
import { tierSchema, type Tier } from '../src/limits/limit-config';
import { RateLimiter } from '../src/limits/rate-limiter';
import type { GatewayRedis } from '../src/redis/gateway-redis';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:56379';
const logger = createLogger('test', 'silent');
const clients: Redis[] = [];

/** A limiter with its own connection, as one gateway replica has. */
async function replica(url = REDIS_URL, timeoutMs = 500): Promise<RateLimiter> {
  const client = createRedis(url, { name: 'test', commandTimeoutMs: timeoutMs });
  clients.push(client);
  if (url === REDIS_URL) await new Promise((resolve) => client.once('ready', resolve));
  return new RateLimiter({ client } as GatewayRedis, logger);
}

function principal(tier: Partial<Tier>): Principal {
  const id = randomUUID().slice(0, 8);
  return { tenantId: `t_${id}`, userId: `u_${id}`, apiKeyId: `k_${id}`, scopes: [], method: 'api_key', tier: tierSchema.parse(tier) };
}

async function outcome(promise: Promise<unknown>): Promise<'ok' | number> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    return (error as ApiError).status;
  }
}

afterAll(() => clients.forEach((client) => client.disconnect()));

describe('rate limiter (real Redis)', () => {
  it('three replicas under parallel load admit exactly the requests-per-minute limit', async () => {
    const replicas = await Promise.all([replica(), replica(), replica()]);
    const caller = principal({ key: { requests_per_minute: 100 } });
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => outcome(replicas[i % 3]!.admit(caller, `r${i}`, { tokens: 1, costMicros: 0 }))));
    expect(results.filter((r) => r === 'ok')).toHaveLength(100);
    expect(results.filter((r) => r === 429)).toHaveLength(200);
  });

  it('never admits more tokens than the tokens-per-minute limit, and answers 429 with Retry-After and x-ratelimit headers', async () => {
    const replicas = await Promise.all([replica(), replica(), replica()]);
    const caller = principal({ tenant: { tokens_per_minute: 10_000 } });
    const results = await Promise.all(Array.from({ length: 90 }, (_, i) => replicas[i % 3]!.admit(caller, `r${i}`, { tokens: 300, costMicros: 0 }).then(() => 'ok' as const, (error: ApiError) => error)));
    expect(results.filter((r) => r === 'ok')).toHaveLength(33);
    const rejected = results.find((r): r is ApiError => r !== 'ok')!;
    expect(rejected.status).toBe(429);
    expect(Number(rejected.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(rejected.headers['x-ratelimit-limit-tokens']).toBe('10000');
    expect(rejected.headers['x-ratelimit-remaining-tokens']).toBe('0');
  });

  it('corrects an estimate to the actual usage, freeing what was not used', async () => {
    const limiter = await replica();
    const caller = principal({ user: { tokens_per_minute: 1_000 } });
    const first = await limiter.admit(caller, 'a', { tokens: 900, costMicros: 0 });
    expect(await outcome(limiter.admit(caller, 'b', { tokens: 200, costMicros: 0 }))).toBe(429);
    await first.settle({ tokens: 100, costMicros: 0 });
    const second = await limiter.admit(caller, 'c', { tokens: 800, costMicros: 0 });
    expect(second.headers['x-ratelimit-remaining-tokens']).toBe('100');
  });

  it('refuses outright a request larger than the whole limit', async () => {
    const error = await (await replica()).admit(principal({ key: { tokens_per_minute: 10 } }), 'x', { tokens: 11, costMicros: 0 }).catch((e: ApiError) => e);
    expect((error as ApiError).status).toBe(429);
    expect((error as ApiError).headers['retry-after']).toBeUndefined();
  });

  it('counts cost per minute in micros', async () => {
    const limiter = await replica();
    const caller = principal({ tenant: { cost_micros_per_minute: 1_000 } });
    await limiter.admit(caller, 'a', { tokens: 1, costMicros: 600 });
    expect(await outcome(limiter.admit(caller, 'b', { tokens: 1, costMicros: 600 }))).toBe(429);
  });

  it('with Redis unreachable, follows each limit\'s policy without hanging', async () => {
    const down = await replica('redis://127.0.0.1:1', 100);
    const open = principal({ key: { requests_per_minute: 5 }, on_redis_failure: { requests: 'open', tokens: 'open', cost: 'closed' } });
    const closed = principal({ key: { requests_per_minute: 5 }, on_redis_failure: { requests: 'closed', tokens: 'open', cost: 'closed' } });
    expect(await outcome(down.admit(open, 'a', { tokens: 1, costMicros: 0 }))).toBe('ok');
    expect(await outcome(down.admit(closed, 'b', { tokens: 1, costMicros: 0 }))).toBe(503);
  });
});
