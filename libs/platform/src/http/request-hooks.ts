import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { context as otelContext, trace, type Span } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { DrainTracker } from '../lifecycle/drain';
import { runWithContext } from '../lifecycle/request-context';
import { httpRequestDuration } from '../metrics/metrics';
import { extractTraceContext, SpanKind, tracer } from '../telemetry/telemetry';
import { ApiError } from '../errors/api-error';
import { sendApiError } from './exception-filter';

const REQUEST_ID = /^[\w.:-]{1,128}$/;
const OPS_ROUTES = new Set(['/healthz', '/readyz', '/metrics', '/health']);

declare module 'fastify' {
  interface FastifyRequest {
    requestId: string;
    span?: Span;
  }
}

/**
 * Per-request plumbing: a request id (the caller's if well-formed), a server
 * span continuing the caller's trace, the async context every log line reads,
 * duration metrics, and a 503 for new work once the process drains.
 */
export function installRequestHooks(fastify: FastifyInstance, drain: DrainTracker, logger?: Logger): void {
  fastify.addHook('onRequest', (request, reply, done) => {
    const incoming = request.headers['x-request-id'];
    request.requestId = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    void reply.header('x-request-id', request.requestId);
    const path = request.url.split('?')[0] ?? request.url;
    if (drain.isDraining && !OPS_ROUTES.has(path)) {
      sendApiError(reply, ApiError.unavailable('server is shutting down; retry on another replica', 1));
      return;
    }
    const parent = extractTraceContext(request.headers as Record<string, string | undefined>);
    const span = tracer().startSpan(`${request.method} ${path}`, { kind: SpanKind.SERVER }, parent);
    request.span = span;
    const spanContext = trace.setSpan(parent, span);
    // Run the rest of the request inside both the OTel context and our request context.
    otelContext.with(spanContext, () => runWithContext({ requestId: request.requestId }, done));
  });

  fastify.addHook('onResponse', (request: FastifyRequest, reply, done) => {
    const route = request.routeOptions?.url ?? 'unmatched';
    httpRequestDuration.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    request.span?.setAttribute('http.response.status_code', reply.statusCode);
    request.span?.end();
    if (logger && !OPS_ROUTES.has(route)) {
      // One access line per request, joined to its trace by id.
      const spanContext = request.span?.spanContext();
      logger.info(
        { method: request.method, route, status: reply.statusCode, duration_ms: Math.round(reply.elapsedTime), request_id: request.requestId, trace_id: spanContext?.traceId, span_id: spanContext?.spanId },
        'request completed',
      );
    }
    done();
  });
}
