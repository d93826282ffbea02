import { createHmac } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { LOGGER, type Logger, PeriodicTask, type Pool } from '@ai-platform/platform';
import { PG_POOL } from '../infra/tokens';

/**
 * Standard Webhooks signature: base64 HMAC-SHA256 over `id.timestamp.body`
 * with the secret (a `whsec_` prefix is stripped and the rest base64-decoded,
 * as the spec says; any other secret is used as UTF-8 bytes).
 */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

const MAX_ATTEMPTS = 12;
/** Longer than a pass can take with 50 deliveries at the 5 s timeout each. */
const CLAIM_LEASE_SECONDS = 300;

/** Delivers queued alert webhooks with the Standard Webhooks headers; retries with backoff. */
@Injectable()
export class WebhookSender {
  private readonly task: PeriodicTask<void>;
  private stopped = true;

  constructor(
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(PG_POOL) private readonly pool: Pool,
  ) {
    this.task = new PeriodicTask('webhook delivery pass', () => this.pass(), logger, undefined);
  }

  start(intervalMs: number): void {
    this.stopped = false;
    this.task.start(intervalMs);
  }

  stop(): Promise<void> {
    this.stopped = true;
    return this.task.stop();
  }

  deliverDue(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return this.task.runOnce();
  }

  private async pass(): Promise<void> {
    // Claimed with a lease: replicas skip rows another one holds, and a replica that dies
    // mid-delivery leaves its rows to be retried when the lease runs out (at least once, same webhook-id).
    const { rows } = await this.pool.query<{ id: string; url: string; secret: string; body: string; attempts: number }>(
      `UPDATE billing.webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $2)
        WHERE d.id IN (SELECT id FROM billing.webhook_deliveries
                        WHERE delivered_at IS NULL AND next_attempt_at <= now() AND attempts < $1
                        ORDER BY next_attempt_at LIMIT 50 FOR UPDATE SKIP LOCKED)
        RETURNING d.id, d.url, d.secret, d.body, d.attempts`,
      [MAX_ATTEMPTS, CLAIM_LEASE_SECONDS],
    );
    for (const row of rows) {
      const timestamp = Math.floor(Date.now() / 1000);
      let error: string | undefined;
      try {
        const response = await fetch(row.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'webhook-id': row.id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signWebhook(row.secret, row.id, timestamp, row.body) },
          body: row.body,
          signal: AbortSignal.timeout(5_000),
        });
        if (!response.ok) error = `HTTP ${response.status}`;
      } catch (caught) {
        error = (caught as Error).message;
      }
      await this.pool.query(
        error
          ? `UPDATE billing.webhook_deliveries SET attempts = attempts + 1, last_error = $2, next_attempt_at = now() + make_interval(secs => least(3600, 2 ^ attempts)) WHERE id = $1`
          : `UPDATE billing.webhook_deliveries SET attempts = attempts + 1, delivered_at = now(), last_error = $2 WHERE id = $1`,
        [row.id, error ?? null],
      );
      if (error) this.logger.warn({ webhook_id: row.id, url: row.url, error }, 'alert webhook delivery failed; will retry');
    }
  }
}
