import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Who a piece of work is for. It travels as gRPC metadata and Kafka headers and
 * is restored into async-local storage on the receiving side, so logs and
 * outgoing calls carry it without being passed by hand.
 */
export interface RequestContext {
  tenantId?: string;
  userId?: string;
  requestId?: string;
  priority?: string;
  /** Absolute deadline in epoch milliseconds. */
  deadline?: number;
}

export const MetadataKeys = {
  tenantId: 'x-tenant-id',
  userId: 'x-user-id',
  requestId: 'x-request-id',
  priority: 'x-priority',
  traceparent: 'traceparent',
  tracestate: 'tracestate',
} as const;

const storage = new AsyncLocalStorage<RequestContext>();

export function currentContext(): RequestContext {
  return storage.getStore() ?? {};
}

export function runWithContext<T>(context: RequestContext, fn: () => T): T {
  return storage.run({ ...currentContext(), ...context }, fn);
}
