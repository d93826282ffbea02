import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One Prometheus registry per process, served at `/metrics`. */
export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry });

export const httpRequestDuration = new Histogram({
  name: 'http_server_request_duration_seconds',
  help: 'HTTP requests by route and status',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [metricsRegistry],
});

export const grpcServerHandled = new Counter({
  name: 'grpc_server_handled_total',
  help: 'gRPC calls handled by this server, by method and status code',
  labelNames: ['method', 'code'] as const,
  registers: [metricsRegistry],
});

export const grpcServerDuration = new Histogram({
  name: 'grpc_server_handling_seconds',
  help: 'gRPC call duration by method',
  labelNames: ['method'] as const,
  // Fine below 10 ms: unary calls on the request path (billing's Reserve) have a single-digit-millisecond budget.
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
  registers: [metricsRegistry],
});

export const inFlightStreams = new Gauge({
  name: 'platform_inflight_streams',
  help: 'Streams (SSE responses and gRPC calls) currently open',
  registers: [metricsRegistry],
});

export const kafkaMessages = new Counter({
  name: 'kafka_messages_total',
  help: 'Kafka messages produced or consumed, by topic and outcome',
  labelNames: ['topic', 'direction', 'outcome'] as const,
  registers: [metricsRegistry],
});

export { Counter, Gauge, Histogram, Registry };
