import { ApiError, createRedis, type Logger, type Redis } from '@ai-platform/platform';

export interface KillSwitchSubject {
  tenantId: string;
  userId: string;
  apiKeyId: string;
}

export interface KillSwitchOptions {
  /** Upper bound on the Redis look-up; past it the fail mode decides. */
  timeoutMs: number;
  /** open: admit and let billing's Reserve decide; closed: refuse with 503. */
  failMode: 'open' | 'closed';
}

/** The key names billing writes (services/billing/src/budgets/periods.ts killSwitchKey). */
export function killSwitchKeys(subject: KillSwitchSubject): string[] {
  const base = `billing:kill:${subject.tenantId}`;
  return [base, `${base}:user:${subject.userId}`, `${base}:api_key:${subject.apiKeyId}`];
}

/**
 * The billing kill switch on the gateway's hot path. Billing writes a Redis key
 * per tripped budget (tenant, user or API key) whose value is the end of the
 * period in epoch ms and which expires then; every replica reads the same
 * keys, so a switch applies to all of them at once. One MGET per request,
 * bounded by `timeoutMs`. When Redis does not answer in time the request is
 * admitted (fail-open, default: billing's Reserve, which reads Postgres, still
 * refuses it) or refused with 503 (fail-closed). A refusal here is a fast
 * path only; Reserve remains the authority.
 */
export class KillSwitchGuard {
  constructor(private readonly redis: Redis | undefined, private readonly options: KillSwitchOptions, private readonly logger?: Logger) {}

  async enforce(subject: KillSwitchSubject): Promise<void> {
    if (!this.redis) return;
    let values: Array<string | null>;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${this.options.timeoutMs} ms`)), this.options.timeoutMs);
      });
      values = await Promise.race([this.redis.mget(...killSwitchKeys(subject)), timeout]);
    } catch (error) {
      this.logger?.warn({ err: error, tenant_id: subject.tenantId, fail_mode: this.options.failMode }, 'kill switch look-up failed');
      if (this.options.failMode === 'closed') throw ApiError.unavailable('billing limits cannot be checked right now; retry shortly', 1);
      return;
    } finally {
      clearTimeout(timer);
    }
    const now = Date.now();
    const on = values.map(Number).filter((until) => Number.isFinite(until) && until > now);
    if (on.length === 0) return;
    const until = new Date(Math.max(...on)).toISOString();
    throw new ApiError(
      402,
      'insufficient_quota',
      `a budget's kill switch is on for this ${values[0] ? 'tenant' : values[1] ? 'user' : 'API key'} until ${until}: its spending limit was reached. An operator can lift it, or raise the budget.`,
      'budget_exceeded',
    );
  }

  close(): void {
    this.redis?.disconnect();
  }
}

let shared: KillSwitchGuard | undefined;

/**
 * The process's guard, configured from the environment: REDIS_URL (unset: no
 * gateway-side check), KILL_SWITCH_TIMEOUT_MS (default 50),
 * KILL_SWITCH_FAIL_MODE (open | closed, default open).
 */
export function killSwitchGuard(env: NodeJS.ProcessEnv = process.env, logger?: Logger): KillSwitchGuard {
  if (shared) return shared;
  const timeoutMs = Number(env.KILL_SWITCH_TIMEOUT_MS ?? 50);
  const failMode = env.KILL_SWITCH_FAIL_MODE ?? 'open';
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 10_000) throw new Error('KILL_SWITCH_TIMEOUT_MS must be an integer between 1 and 10000');
  if (failMode !== 'open' && failMode !== 'closed') throw new Error('KILL_SWITCH_FAIL_MODE must be open or closed');
  const redis = env.REDIS_URL ? createRedis(env.REDIS_URL, { name: 'gateway-kill-switch', commandTimeoutMs: timeoutMs }) : undefined;
  shared = new KillSwitchGuard(redis, { timeoutMs, failMode }, logger);
  return shared;
}

/** Refuses the principal's request when one of its kill switches is on (see KillSwitchGuard). */
export function enforceKillSwitch(principal: KillSwitchSubject): Promise<void> {
  return killSwitchGuard().enforce(principal);
}

export function closeKillSwitchGuard(): void {
  shared?.close();
  shared = undefined;
}
