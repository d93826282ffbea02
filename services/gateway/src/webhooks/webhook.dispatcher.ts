import { randomUUID } from 'node:crypto';
import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Job } from 'bullmq';
import { CONFIG, LOGGER, type Logger } from '@ai-platform/platform';
import type { GatewayConfig } from '../config';
import { WorkQueue } from '../redis/work-queue';
import { postJson, signWebhook } from './outbound';
import { WebhookStore } from './webhook.store';

export interface WebhookEvent {
  id: string;
  type: string;
  timestamp: string;
  data: unknown;
}

interface Delivery {
  tenantId: string;
  webhookId: string;
  event: WebhookEvent;
}

/**
 * Signed webhook deliveries on BullMQ: each try is signed afresh (Standard
 * Webhooks headers webhook-id, webhook-timestamp, webhook-signature), retried
 * with exponential backoff, and after the last try written to the tenant's
 * dead-letter table, from which it can be replayed.
 */
@Injectable()
export class WebhookDispatcher implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown {
  private work?: WorkQueue<Delivery>;

  constructor(
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(WebhookStore) private readonly store: WebhookStore,
  ) {}

  onModuleInit(): void {
    this.work = new WorkQueue<Delivery>(
      'gateway-webhooks',
      { redisUrl: this.config.REDIS_URL, prefix: this.config.QUEUE_PREFIX, concurrency: 8, logger: this.logger },
      (job) => this.deliver(job),
    );
    this.work.worker.on('failed', (job, error) => {
      if (!job || job.attemptsMade < (job.opts.attempts ?? 1)) return;
      void this.store
        .addDeadLetter(job.data.tenantId, { id: `dl_${job.id}`, webhookId: job.data.webhookId, eventId: job.data.event.id, eventType: job.data.event.type, payload: job.data.event, attempts: job.attemptsMade, lastError: error.message })
        .catch((e) => this.logger.error({ err: e }, 'could not write webhook dead letter'));
    });
  }

  /** Stops taking work and lets running work finish while the gRPC clients and the database are still open. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.work?.stopWorking();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.work?.close();
  }

  private get queue() {
    return this.work!.queue;
  }

  /** Queues `type` for every endpoint of the tenant that subscribed to it. */
  async emit(tenantId: string, type: string, data: unknown): Promise<void> {
    const endpoints = await this.store.subscribers(tenantId, type);
    const event: WebhookEvent = { id: `evt_${randomUUID().replaceAll('-', '')}`, type, timestamp: new Date().toISOString(), data };
    for (const endpoint of endpoints) await this.enqueue({ tenantId, webhookId: endpoint.id, event });
  }

  async enqueue(delivery: Delivery): Promise<void> {
    await this.queue.add('deliver', delivery, {
      jobId: `${delivery.event.id}-${delivery.webhookId}-${randomUUID().slice(0, 8)}`,
      attempts: this.config.WEBHOOK_MAX_ATTEMPTS,
      backoff: { type: 'exponential', delay: this.config.WEBHOOK_BACKOFF_MS },
      removeOnComplete: { age: 24 * 3600 },
      removeOnFail: { age: 7 * 24 * 3600 },
    });
  }

  private async deliver(job: Job<Delivery>): Promise<void> {
    const endpoint = await this.store.endpoint(job.data.tenantId, job.data.webhookId);
    if (!endpoint) return; // deleted since: nothing to deliver to
    const body = JSON.stringify(job.data.event);
    const timestamp = Math.floor(Date.now() / 1000);
    const headers = { 'webhook-id': job.data.event.id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signWebhook(endpoint.secret, job.data.event.id, timestamp, body) };
    const status = await postJson(endpoint.url, body, headers, { allowedPrivateHosts: this.config.WEBHOOK_ALLOWED_PRIVATE_HOSTS, allowHttp: this.config.WEBHOOK_ALLOW_HTTP }, this.config.WEBHOOK_TIMEOUT_MS);
    if (status < 200 || status >= 300) throw new Error(`endpoint answered ${status}`);
  }
}
