import { Metadata } from '@grpc/grpc-js';
import { MetadataKeys, type RequestContext } from '../lifecycle/request-context';
import { injectTraceContext } from '../telemetry/telemetry';

export function contextToMetadata(context: RequestContext): Metadata {
  const metadata = new Metadata();
  if (context.tenantId) metadata.set(MetadataKeys.tenantId, context.tenantId);
  if (context.userId) metadata.set(MetadataKeys.userId, context.userId);
  if (context.requestId) metadata.set(MetadataKeys.requestId, context.requestId);
  if (context.priority) metadata.set(MetadataKeys.priority, context.priority);
  for (const [key, value] of Object.entries(injectTraceContext())) metadata.set(key, value);
  return metadata;
}

export function metadataToContext(metadata: Metadata, deadline?: number): RequestContext {
  const read = (key: string) => {
    const value = metadata.get(key)[0];
    return typeof value === 'string' && value.length > 0 && value.length <= 256 ? value : undefined;
  };
  return {
    tenantId: read(MetadataKeys.tenantId),
    userId: read(MetadataKeys.userId),
    requestId: read(MetadataKeys.requestId),
    priority: read(MetadataKeys.priority),
    deadline,
  };
}

export function metadataCarrier(metadata: Metadata): Record<string, string | undefined> {
  const traceparent = metadata.get(MetadataKeys.traceparent)[0];
  const tracestate = metadata.get(MetadataKeys.tracestate)[0];
  return {
    traceparent: typeof traceparent === 'string' ? traceparent : undefined,
    tracestate: typeof tracestate === 'string' ? tracestate : undefined,
  };
}
