import type { Logger } from 'pino';
import type { Pool, PoolClient } from 'pg';
import { withTransaction } from '../postgres/postgres';
import { injectTraceContext } from '../telemetry/telemetry';
import { withEventId, type CloudEvent } from './cloud-event';
import type { EventPublisher } from './kafka';

interface OutboxRow {
  seq: string;
  topic: string;
  event: CloudEvent & { id: string; time: string; data: string };
}

/**
 * Transactional outbox: an event is written to Postgres first (in the caller's
 * transaction when there is one), then relayed to Kafka and deleted. A crash
 * between the two leaves the row to be sent on the next pass; consumers
 * deduplicate by the event id, which is fixed at enqueue time.
 */
export class Outbox {
  private timer?: NodeJS.Timeout;
  /** When the scheduled pass fires (ms since epoch). */
  private dueAt = Infinity;
  private running = false;
  private again = false;
  private stopped = false;
  private pending?: Promise<void>;

  constructor(
    private readonly pool: Pool,
    private readonly schema: string,
    private readonly publisher: EventPublisher,
    private readonly logger: Logger,
    private readonly intervalMs = 250,
    /**
     * How long a pass waits after an enqueue for more events to join it. One pass is a transaction
     * of four round trips and a Kafka produce, so one per event under load cost more than the
     * events; 20 ms coalesces them while a usage event still reaches Kafka well within a second.
     */
    private readonly coalesceMs = 20,
  ) {}

  async ensureTable(): Promise<void> {
    await this.pool.query(
      `CREATE TABLE IF NOT EXISTS ${this.schema}.outbox (
         seq bigserial PRIMARY KEY, topic text NOT NULL, event jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
    );
  }

  /** Stores the event; returns its id. Pass `client` to join an open transaction. */
  async enqueue(topic: string, event: CloudEvent, client?: PoolClient): Promise<string> {
    const withId = withEventId(event);
    const stored = { ...withId, trace: withId.trace ?? injectTraceContext(), time: (withId.time ?? new Date()).toISOString(), data: Buffer.isBuffer(withId.data) ? withId.data.toString('base64') : withId.data, binary: Buffer.isBuffer(withId.data) };
    // Named: parsed and planned once per pooled connection, on a statement every model call makes.
    await (client ?? this.pool).query({ name: `${this.schema}.outbox.enqueue`, text: `INSERT INTO ${this.schema}.outbox (topic, event) VALUES ($1, $2)`, values: [topic, JSON.stringify(stored)] });
    if (!client) this.wake();
    return withId.id;
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  /** Sends what is pending now; used at shutdown and by `wake`. */
  async flush(): Promise<void> {
    if (this.running) {
      // Events may have been enqueued after this pass read the table: one more pass follows it.
      this.again = true;
      return this.pending;
    }
    this.running = true;
    this.pending = (async () => {
      try {
        do {
          this.again = false;
          await this.relay();
        } while (this.again);
      } finally {
        this.running = false;
      }
    })();
    return this.pending;
  }

  wake(): void {
    // A pass already due sooner stays as it is: later wakes must not push it back under steady load.
    if (!this.stopped && this.dueAt > Date.now() + this.coalesceMs) this.schedule(this.coalesceMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.dueAt = Infinity;
    await this.flush().catch(() => undefined);
  }

  private schedule(delayMs: number) {
    clearTimeout(this.timer);
    this.dueAt = Date.now() + delayMs;
    this.timer = setTimeout(() => {
      this.dueAt = Infinity;
      this.flush()
        .catch((error) => this.logger.warn({ err: error }, 'outbox relay failed; retrying'))
        .finally(() => {
          // A wake during the pass has already scheduled the next one sooner.
          if (!this.stopped && this.dueAt === Infinity) this.schedule(this.intervalMs);
        });
    }, delayMs);
    this.timer.unref();
  }

  private async relay(): Promise<void> {
    for (;;) {
      const sent = await withTransaction(this.pool, async (client) => {
        const { rows } = await client.query<OutboxRow & { event: OutboxRow['event'] & { binary?: boolean } }>(
          `SELECT seq, topic, event FROM ${this.schema}.outbox ORDER BY seq LIMIT 200 FOR UPDATE SKIP LOCKED`,
        );
        if (rows.length === 0) return 0;
        const byTopic = new Map<string, CloudEvent[]>();
        for (const row of rows) {
          const { binary, ...event } = row.event;
          const list = byTopic.get(row.topic) ?? [];
          list.push({ ...event, time: new Date(event.time), data: binary ? Buffer.from(event.data, 'base64') : event.data });
          byTopic.set(row.topic, list);
        }
        for (const [topic, events] of byTopic) await this.publisher.publish(topic, events);
        await client.query(`DELETE FROM ${this.schema}.outbox WHERE seq = ANY($1::bigint[])`, [rows.map((row) => row.seq)]);
        return rows.length;
      });
      if (sent < 200) return;
    }
  }
}
