import { randomUUID } from 'node:crypto';
import { create, toJsonString } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Inject, Injectable } from '@nestjs/common';
import { EventTypes, events } from '@ai-platform/contracts';
import { LOGGER, type Logger } from '@ai-platform/platform';
import { costMicros, PriceTable } from '@ai-platform/pricing';
import { generatedTokens, usageEvents } from '../metrics';
import { UsageOutbox } from './usage-outbox';

export const PRICE_TABLE = Symbol('PRICE_TABLE');
export const SOURCE = 'inference-scheduler';

export type UsageStatus = 'completed' | 'aborted' | 'failed';

const STATUS: Record<UsageStatus, events.UsageStatus> = {
  completed: events.UsageStatus.COMPLETED,
  aborted: events.UsageStatus.ABORTED,
  failed: events.UsageStatus.FAILED,
};

/** Everything known about one metered model call when it ends. */
export interface UsageRecord {
  tenantId: string;
  userId: string;
  apiKeyId: string;
  requestId: string;
  reservationId: string;
  conversationId: string;
  model: string;
  engineId: string;
  priority: string;
  status: UsageStatus;
  inputTokens: number;
  cachedInputTokens: number;
  outputTokens: number;
  /** Tokens an embedding model read (Embed calls). */
  embeddingTokens?: number;
  startedAt: Date;
  finishedAt: Date;
}

/**
 * Turns a finished model call into its one UsageEvent and stores it in the
 * outbox. The event id is fixed before the first write, so a retried write or
 * a relay that publishes twice still yields one event for consumers that
 * deduplicate by id. When Postgres refuses the write, it is retried in the
 * background (shutdown waits for it); only when every retry failed is the
 * event logged in full, at error level, as lost.
 */
@Injectable()
export class UsageRecorder {
  constructor(
    private readonly outbox: UsageOutbox,
    @Inject(PRICE_TABLE) private readonly prices: PriceTable,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  build(record: UsageRecord): events.UsageEvent {
    const price = this.prices.get(record.model);
    const tokens = {
      inputTokens: record.inputTokens,
      cachedInputTokens: Math.min(record.cachedInputTokens, record.inputTokens),
      outputTokens: record.outputTokens,
      embeddingTokens: record.embeddingTokens ?? 0,
    };
    if (!price) this.logger.error({ model: record.model }, 'model has no list price; usage recorded with cost 0');
    return create(events.UsageEventSchema, {
      eventId: randomUUID(),
      tenantId: record.tenantId,
      userId: record.userId,
      apiKeyId: record.apiKeyId,
      requestId: record.requestId,
      reservationId: record.reservationId,
      conversationId: record.conversationId,
      model: record.model,
      engineId: record.engineId,
      inputTokens: tokens.inputTokens,
      cachedInputTokens: tokens.cachedInputTokens,
      outputTokens: tokens.outputTokens,
      embeddingTokens: tokens.embeddingTokens,
      costMicros: BigInt(price ? costMicros(price, tokens) : 0),
      status: STATUS[record.status],
      priority: record.priority,
      startedAt: timestampFromDate(record.startedAt),
      finishedAt: timestampFromDate(record.finishedAt),
    });
  }

  /**
   * Records the call. Resolves once the event is committed to the outbox, or
   * after the first failed write (retries continue in the background).
   */
  async record(record: UsageRecord): Promise<events.UsageEvent> {
    const event = this.build(record);
    generatedTokens.inc({ model: record.model, kind: 'input' }, event.inputTokens);
    generatedTokens.inc({ model: record.model, kind: 'cached_input' }, event.cachedInputTokens);
    generatedTokens.inc({ model: record.model, kind: 'output' }, event.outputTokens);
    if (event.embeddingTokens > 0) generatedTokens.inc({ model: record.model, kind: 'embedding' }, event.embeddingTokens);
    const write = () =>
      this.outbox.enqueue({
        id: event.eventId,
        type: EventTypes.usageRecorded,
        source: SOURCE,
        key: event.tenantId,
        time: record.finishedAt,
        data: toJsonString(events.UsageEventSchema, event),
        contentType: 'application/json',
      });
    try {
      await write();
      this.enqueued(event, record);
    } catch (error) {
      this.logger.warn({ err: error, event_id: event.eventId }, 'usage event write failed; retrying in the background');
      void this.outbox.track(this.retry(write, event, record));
    }
    return event;
  }

  private async retry(write: () => Promise<string>, event: events.UsageEvent, record: UsageRecord): Promise<void> {
    let delay = 200;
    for (let attempt = 1; attempt <= 12; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10_000);
      try {
        await write();
        this.enqueued(event, record);
        return;
      } catch (error) {
        this.logger.warn({ err: error, event_id: event.eventId, attempt }, 'usage event write failed');
      }
    }
    usageEvents.inc({ status: record.status, result: 'lost' });
    this.logger.error({ usage_event: toJsonString(events.UsageEventSchema, event) }, 'usage event lost: outbox unavailable after every retry');
  }

  private enqueued(event: events.UsageEvent, record: UsageRecord) {
    usageEvents.inc({ status: record.status, result: 'enqueued' });
    this.logger.info(
      {
        event_id: event.eventId,
        model: event.model,
        engine: event.engineId,
        status: record.status,
        input_tokens: event.inputTokens,
        cached_input_tokens: event.cachedInputTokens,
        output_tokens: event.outputTokens,
        cost_micros: event.costMicros.toString(),
      },
      'usage recorded',
    );
  }
}
