import { context, propagation, trace, type Context, type Span, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor, TraceIdRatioBasedSampler, ParentBasedSampler, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

let provider: NodeTracerProvider | undefined;
let memoryExporter: InMemorySpanExporter | undefined;

export interface TelemetryOptions {
  serviceName: string;
  otlpEndpoint?: string;
  samplerRatio?: number;
  /** Keep finished spans in memory (tests assert trace topology with it). */
  inMemory?: boolean;
}

/**
 * Boots tracing once per process. Spans are always created so trace ids reach
 * logs and downstream calls; they are exported only when an OTLP endpoint is set.
 */
export function startTelemetry(options: TelemetryOptions): void {
  if (provider) return;
  const processors: SpanProcessor[] = [];
  if (options.otlpEndpoint) {
    const url = new URL('/v1/traces', options.otlpEndpoint).toString();
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url })));
  }
  if (options.inMemory) {
    memoryExporter = new InMemorySpanExporter();
    processors.push(new SimpleSpanProcessor(memoryExporter));
  }
  provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.serviceName }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.samplerRatio ?? 1) }),
    spanProcessors: processors,
  });
  provider.register({ propagator: new W3CTraceContextPropagator() });
}

export async function stopTelemetry(): Promise<void> {
  await provider?.shutdown().catch(() => undefined);
  provider = undefined;
}

export function finishedSpans() {
  return memoryExporter?.getFinishedSpans() ?? [];
}

export const tracer = () => trace.getTracer('ai-platform');

/** Reads W3C trace headers from any string map (gRPC metadata, Kafka headers, HTTP). */
export function extractTraceContext(carrier: Record<string, string | undefined>): Context {
  return propagation.extract(context.active(), carrier);
}

/** Writes the active span's W3C trace headers into `carrier`. */
export function injectTraceContext(carrier: Record<string, string> = {}): Record<string, string> {
  propagation.inject(context.active(), carrier);
  return carrier;
}

export function activeTraceIds(): { traceId?: string; spanId?: string } {
  const span = trace.getSpan(context.active());
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { traceId, spanId };
}

/** Runs `fn` inside a new span (child of `parent` or of the active context) and ends it after. */
export async function withSpan<T>(
  name: string,
  options: { kind?: SpanKind; parent?: Context; attributes?: Record<string, string | number | boolean> },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = options.parent ?? context.active();
  const span = tracer().startSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (error) {
    span.recordException(error as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
    throw error;
  } finally {
    span.end();
  }
}

export { SpanKind, SpanStatusCode, context as otelContext, trace as otelTrace };
