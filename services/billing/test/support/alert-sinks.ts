import { createServer, type Server } from 'node:http';
import { createHmac, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Topics } from '@ai-platform/contracts';
import { headerValue } from '@ai-platform/platform';
import type { Consumer, Kafka } from 'kafkajs';

/** Standard Webhooks verification, written from the spec (not the service's signer). */
function expectedSignature(secret: string, id: string, timestamp: string, body: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

export interface ReceivedAlert {
  id: string;
  tenantId: string;
  body: Record<string, unknown>;
}

/** Every `billing.alerts.v1` message since the sink started, as (ce_id, key, JSON body). */
export class KafkaAlertSink {
  readonly alerts: ReceivedAlert[] = [];
  private constructor(private readonly consumer: Consumer) {}

  static async start(kafka: Kafka): Promise<KafkaAlertSink> {
    const groupId = `billing-test-alerts-${randomUUID()}`;
    const admin = kafka.admin();
    await admin.connect();
    try {
      // Positioned at the end of the shared topic: only this run's alerts.
      const offsets = await admin.fetchTopicOffsets(Topics.billingAlerts);
      await admin.setOffsets({ groupId, topic: Topics.billingAlerts, partitions: offsets.map(({ partition, high }) => ({ partition, offset: high })) });
    } finally {
      await admin.disconnect();
    }
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
    const sink = new KafkaAlertSink(consumer);
    await consumer.connect();
    await consumer.subscribe({ topic: Topics.billingAlerts });
    await consumer.run({
      eachMessage: async ({ message }) => {
        sink.alerts.push({ id: headerValue(message.headers, 'ce_id') ?? '', tenantId: message.key?.toString() ?? '', body: JSON.parse(message.value?.toString() ?? '{}') });
      },
    });
    return sink;
  }

  /**
   * The tenant's alerts, one per alert id: delivery is at least once (another
   * billing replica's outbox relay may publish the same row again), and
   * consumers deduplicate by ce_id, as the contract says.
   */
  of(tenantId: string): ReceivedAlert[] {
    const byId = new Map(this.alerts.filter((alert) => alert.tenantId === tenantId).map((alert) => [alert.id, alert]));
    return [...byId.values()];
  }

  stop(): Promise<void> {
    return this.consumer.disconnect();
  }
}

export interface ReceivedWebhook {
  id: string;
  timestamp: string;
  signature: string;
  /** True when the signature is the Standard Webhooks HMAC of id.timestamp.body under the secret. */
  verified: boolean;
  body: { type: string; data: Record<string, unknown> };
}

/** A local HTTP server standing in for a tenant's alert webhook endpoint; it checks each signature. */
export class WebhookSink {
  readonly received: ReceivedWebhook[] = [];
  private constructor(private readonly server: Server, readonly secret: string) {}

  static async start(secret: string): Promise<WebhookSink> {
    const server = createServer();
    const sink = new WebhookSink(server, secret);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk) => chunks.push(chunk));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString();
        const id = String(req.headers['webhook-id'] ?? '');
        const timestamp = String(req.headers['webhook-timestamp'] ?? '');
        const signature = String(req.headers['webhook-signature'] ?? '');
        const verified = signature.split(' ').includes(expectedSignature(secret, id, timestamp, raw));
        sink.received.push({ id, timestamp, signature, verified, body: JSON.parse(raw) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return sink;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/alerts`;
  }

  /** The tenant's webhooks, one per webhook-id (receivers deduplicate by it; delivery is at least once). */
  of(tenantId: string): ReceivedWebhook[] {
    const byId = new Map(this.received.filter((hook) => hook.body.data.tenantId === tenantId).map((hook) => [hook.id, hook]));
    return [...byId.values()];
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
