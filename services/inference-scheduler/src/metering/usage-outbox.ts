import path from 'node:path';
import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { Topics } from '@ai-platform/contracts';
import {
  CONFIG,
  createKafka,
  createPool,
  ensureTopics,
  EventPublisher,
  HealthRegistry,
  LOGGER,
  migrate,
  Outbox,
  type CloudEvent,
  type Logger,
  type Pool,
} from '@ai-platform/platform';
import type { SchedulerConfig } from '../config';

export const SCHEMA = 'inference';
export const MIGRATIONS_DIR = path.resolve(__dirname, '../../migrations');

/**
 * Postgres + Kafka plumbing of metering: the `inference` schema holds the
 * transactional outbox, whose relay publishes to Kafka. Kafka may be down:
 * events wait in Postgres. Postgres is required: without it nothing can be
 * metered, so it is part of readiness.
 */
@Injectable()
export class UsageOutbox implements OnModuleInit, OnApplicationShutdown {
  private pool?: Pool;
  private publisher?: EventPublisher;
  private outbox?: Outbox;
  /** Writes still running; shutdown waits for them before stopping the relay. */
  private readonly pending = new Set<Promise<unknown>>();

  constructor(
    @Inject(CONFIG) private readonly config: SchedulerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(HealthRegistry) private readonly health: HealthRegistry,
  ) {}

  async onModuleInit(): Promise<void> {
    this.pool = createPool(this.config.DATABASE_URL, { applicationName: 'inference-scheduler', max: 10 });
    await migrate(this.pool, SCHEMA, MIGRATIONS_DIR, this.logger);
    const kafka = createKafka(this.config.KAFKA_BROKERS, 'inference-scheduler', this.logger);
    this.publisher = new EventPublisher(kafka);
    this.outbox = new Outbox(this.pool, SCHEMA, this.publisher, this.logger);
    await this.outbox.ensureTable();
    this.outbox.start();
    // Best effort: the relay retries until the topic exists and Kafka answers.
    ensureTopics(kafka, [{ topic: Topics.usageEvents }]).catch((error) => this.logger.warn({ err: error }, `could not ensure topic ${Topics.usageEvents}; the outbox keeps events until Kafka answers`));
    const pool = this.pool;
    this.health.register('postgres', async () => {
      await pool.query('SELECT 1');
    });
  }

  /** Stores one event durably; resolves once the row is committed. */
  enqueue(event: CloudEvent): Promise<string> {
    if (!this.outbox) return Promise.reject(new Error('usage outbox not started'));
    return this.track(this.outbox.enqueue(Topics.usageEvents, event));
  }

  /** Registers a write so shutdown waits for it. */
  track<T>(work: Promise<T>): Promise<T> {
    this.pending.add(work);
    const done = () => this.pending.delete(work);
    work.then(done, done);
    return work;
  }

  async onApplicationShutdown(): Promise<void> {
    // Calls ended by the drain are still writing their usage events.
    const deadline = Date.now() + Math.max(5_000, this.config.SHUTDOWN_GRACE_MS);
    while (this.pending.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.allSettled([...this.pending]), new Promise((resolve) => setTimeout(resolve, 250))]);
    }
    if (this.pending.size > 0) this.logger.error({ pending: this.pending.size }, 'shutting down with usage events not yet written');
    await this.outbox?.stop();
    await this.publisher?.disconnect().catch((error) => this.logger.warn({ err: error }, 'kafka producer disconnect failed'));
    await this.pool?.end().catch(() => undefined);
  }
}
