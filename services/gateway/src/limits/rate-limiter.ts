import { Inject, Injectable } from '@nestjs/common';
import { ApiError, LOGGER, type Logger, type Redis } from '@ai-platform/platform';
import type { Principal } from '../auth/principal';
import { GatewayRedis } from '../redis/gateway-redis';
import type { ScopeLimits } from './limit-config';
import { CORRECT_LUA, SLIDING_WINDOW_LUA } from './lua-scripts';

export const WINDOW_MS = 60_000;

type Kind = 'requests' | 'tokens' | 'cost';
const FIELD: Record<Kind, keyof ScopeLimits> = { requests: 'requests_per_minute', tokens: 'tokens_per_minute', cost: 'cost_micros_per_minute' };

interface Counter {
  kind: Kind;
  scope: 'key' | 'user' | 'tenant';
  key: string;
  limit: number;
  amount: number;
}

export interface Demand {
  /** Tokens the request may use at most (prompt estimate + max_tokens). */
  tokens: number;
  /** Its worst-case cost in micros. */
  costMicros: number;
}

/** An admitted request: headers to send, and the correction once its real usage is known. */
export interface Admission {
  headers: Record<string, string>;
  settle(actual: Demand): Promise<void>;
}

type LimiterRedis = Redis & {
  rlCheck(...args: Array<string | number>): Promise<number[]>;
  rlCorrect(...args: Array<string | number>): Promise<number>;
};

const seconds = (ms: number) => `${Math.max(ms, 0) / 1000}s`;

/**
 * Requests, tokens and cost per minute, per key, user and tenant, as exact
 * sliding windows in Redis. One Lua script checks every counter of a request
 * and charges all of them or none, so any number of gateway replicas admit
 * exactly what one would. Tokens and cost are charged at their worst case and
 * corrected to the actual usage when the call ends.
 */
@Injectable()
export class RateLimiter {
  private readonly redis: LimiterRedis;

  constructor(
    @Inject(GatewayRedis) redis: GatewayRedis,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.redis = redis.client as LimiterRedis;
    this.redis.defineCommand('rlCheck', { lua: SLIDING_WINDOW_LUA });
    this.redis.defineCommand('rlCorrect', { lua: CORRECT_LUA });
  }

  counters(principal: Principal, demand: Demand): Counter[] {
    const out: Counter[] = [];
    const ids = { key: principal.apiKeyId, user: principal.userId, tenant: principal.tenantId };
    for (const scope of ['key', 'user', 'tenant'] as const) {
      const limits = principal.tier[scope];
      if (!limits) continue;
      for (const kind of ['requests', 'tokens', 'cost'] as const) {
        const limit = limits[FIELD[kind]];
        if (!limit) continue;
        const amount = kind === 'requests' ? 1 : kind === 'tokens' ? demand.tokens : demand.costMicros;
        // One hash tag per tenant: every key of a request lives on the same cluster slot.
        out.push({ kind, scope, key: `rl:{${principal.tenantId}}:${scope}:${ids[scope]}:${kind}`, limit, amount: Math.max(0, Math.ceil(amount)) });
      }
    }
    return out;
  }

  async admit(principal: Principal, requestId: string, demand: Demand): Promise<Admission> {
    const counters = this.counters(principal, demand);
    if (counters.length === 0) return { headers: {}, settle: async () => undefined };
    const member = requestId.replaceAll(':', '_');
    let result: number[];
    try {
      result = await this.redis.rlCheck(
        counters.length * 2,
        ...counters.flatMap((counter) => [counter.key, `${counter.key}:sum`]),
        WINDOW_MS, member,
        ...counters.flatMap((counter) => [counter.limit, counter.amount]),
      );
    } catch (error) {
      return this.onRedisFailure(principal, counters, error);
    }
    const headers = this.headers(counters, result);
    if (result[0] !== 1) {
      const failing = counters[result[2]! - 1]!;
      const retryMs = result[1]!;
      if (retryMs < 0) {
        throw new ApiError(429, 'rate_limit_error', `This request alone needs ${failing.amount} ${failing.kind} but the ${failing.scope} limit is ${failing.limit} per minute.`, 'rate_limit_exceeded', null, headers);
      }
      throw new ApiError(429, 'rate_limit_error', `Rate limit reached for ${failing.kind} per minute (${failing.scope} limit ${failing.limit}). Try again in ${seconds(retryMs)}.`, 'rate_limit_exceeded', null,
        { ...headers, 'retry-after': String(Math.max(1, Math.ceil(retryMs / 1000))), 'retry-after-ms': String(retryMs) });
    }
    return {
      headers,
      settle: async (actual) => {
        const corrected = counters.filter((counter) => counter.kind !== 'requests');
        if (corrected.length === 0) return;
        const value = (counter: Counter) => Math.max(0, Math.ceil(counter.kind === 'tokens' ? actual.tokens : actual.costMicros));
        try {
          await this.redis.rlCorrect(corrected.length * 2, ...corrected.flatMap((counter) => [counter.key, `${counter.key}:sum`]), member, ...corrected.flatMap((counter) => [counter.amount, value(counter)]));
        } catch (error) {
          this.logger.warn({ err: error }, 'could not correct rate-limit usage; the estimate stands until it leaves the window');
        }
      },
    };
  }

  /** Redis is slow or down: each kind of limit follows its configured policy. */
  private onRedisFailure(principal: Principal, counters: Counter[], error: unknown): Admission {
    const closed = counters.find((counter) => principal.tier.on_redis_failure[counter.kind] === 'closed');
    this.logger.warn({ err: error, policy: closed ? 'closed' : 'open' }, 'rate limiter unavailable');
    if (closed) throw ApiError.unavailable(`Rate limiting is unavailable and the ${closed.kind} limit fails closed; retry shortly.`, 1);
    return { headers: {}, settle: async () => undefined };
  }

  /** OpenAI's x-ratelimit-* headers from the tightest counter of each kind. */
  private headers(counters: Counter[], result: number[]): Record<string, string> {
    const headers: Record<string, string> = {};
    const tightest = new Map<Kind, { limit: number; remaining: number; reset: number }>();
    counters.forEach((counter, index) => {
      const remaining = result[3 + 2 * index]!;
      const reset = result[4 + 2 * index]!;
      const seen = tightest.get(counter.kind);
      if (!seen || remaining < seen.remaining) tightest.set(counter.kind, { limit: counter.limit, remaining, reset });
    });
    for (const [kind, value] of tightest) {
      const name = kind === 'cost' ? 'cost-micros' : kind;
      headers[`x-ratelimit-limit-${name}`] = String(value.limit);
      headers[`x-ratelimit-remaining-${name}`] = String(value.remaining);
      headers[`x-ratelimit-reset-${name}`] = seconds(value.reset || WINDOW_MS);
    }
    return headers;
  }
}
