import { randomUUID } from 'node:crypto';
import type { IHeaders } from 'kafkajs';
import { injectTraceContext } from '../telemetry/telemetry';

/** An event in CloudEvents' Kafka binary mode: attributes as `ce_*` headers, data as the value. */
export interface CloudEvent {
  id?: string;
  type: string;
  source: string;
  time?: Date;
  /** Partition key: the tenant id, so one tenant's events stay in order. */
  key: string;
  data: string | Buffer;
  contentType?: string;
  /** CloudEvents extension attributes, sent as `ce_<name>` headers. */
  extensions?: Record<string, string>;
  /** W3C trace headers captured when the event was created; defaults to the active trace. */
  trace?: Record<string, string>;
}

export function cloudEventHeaders(event: CloudEvent & { id: string }): Record<string, string> {
  return {
    ce_specversion: '1.0',
    ce_id: event.id,
    ce_type: event.type,
    ce_source: event.source,
    ce_time: (event.time ?? new Date()).toISOString(),
    'content-type': event.contentType ?? 'application/json',
    ...Object.fromEntries(Object.entries(event.extensions ?? {}).map(([name, value]) => [`ce_${name}`, value])),
    ...(event.trace ?? injectTraceContext()),
  };
}

export function withEventId<T extends CloudEvent>(event: T): T & { id: string } {
  return { ...event, id: event.id ?? randomUUID() };
}

export function headerValue(headers: IHeaders | undefined, name: string): string | undefined {
  const value = headers?.[name];
  if (value === undefined || value === null) return undefined;
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : first.toString();
}
