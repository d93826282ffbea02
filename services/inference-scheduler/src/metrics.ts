import { Counter, Gauge, Histogram, metricsRegistry } from '@ai-platform/platform';

/** Generate calls by model, engine (empty when none was reached) and outcome. */
export const embedRequests = new Counter({
  name: 'inference_embed_requests_total',
  help: 'Embed calls by model and outcome (completed, aborted, failed, invalid, not_found)',
  labelNames: ['model', 'outcome'] as const,
  registers: [metricsRegistry],
});

export const generateRequests = new Counter({
  name: 'inference_requests_total',
  help: 'Generate calls by model, engine and outcome (completed, aborted, failed, invalid, not_found, unavailable)',
  labelNames: ['model', 'engine', 'outcome'] as const,
  registers: [metricsRegistry],
});

export const timeToFirstToken = new Histogram({
  name: 'inference_time_to_first_token_seconds',
  help: 'Time from receiving a Generate call to its first token, queueing and retries included',
  labelNames: ['model', 'engine', 'priority'] as const,
  buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60],
  registers: [metricsRegistry],
});

export const generatedTokens = new Counter({
  name: 'inference_tokens_total',
  help: 'Tokens metered, by model and kind (input, cached_input, output)',
  labelNames: ['model', 'kind'] as const,
  registers: [metricsRegistry],
});

export const enginePrefillBacklog = new Gauge({
  name: 'inference_engine_prefill_backlog_tokens',
  help: 'Estimated uncached prompt tokens of our requests on each engine that have no first token yet (the prefill backlog admission counts)',
  labelNames: ['engine'] as const,
  registers: [metricsRegistry],
});

export const engineInFlight = new Gauge({
  name: 'inference_engine_inflight_requests',
  help: 'Requests this scheduler has open on each engine',
  labelNames: ['engine'] as const,
  registers: [metricsRegistry],
});

export const engineHealthy = new Gauge({
  name: 'inference_engine_healthy',
  help: '1 when the engine passed its last health poll and serves at least one model',
  labelNames: ['engine'] as const,
  registers: [metricsRegistry],
});

export const engineScrapedRequests = new Gauge({
  name: 'inference_engine_scraped_requests',
  help: "Requests the engine reported in its last scrape, by state (running, waiting)",
  labelNames: ['engine', 'state'] as const,
  registers: [metricsRegistry],
});

export const enginePollFailures = new Counter({
  name: 'inference_engine_poll_failures_total',
  help: 'Failed engine polls by engine and endpoint (health, models, metrics)',
  labelNames: ['engine', 'endpoint'] as const,
  registers: [metricsRegistry],
});

export const retries = new Counter({
  name: 'inference_retries_total',
  help: 'Attempts retried on another engine before the first token, by model and reason',
  labelNames: ['model', 'reason'] as const,
  registers: [metricsRegistry],
});

export const usageEvents = new Counter({
  name: 'inference_usage_events_total',
  help: 'Usage events by status and result (enqueued in the outbox, or lost after every retry)',
  labelNames: ['status', 'result'] as const,
  registers: [metricsRegistry],
});

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export const interTokenLatency = new Histogram({
  name: 'inference_inter_token_latency_seconds',
  help: 'Time between two streamed content chunks, by model and engine',
  labelNames: ['model', 'engine'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2, 2.5],
  registers: [metricsRegistry],
});

export const outputTokensPerSecond = new Histogram({
  name: 'inference_output_tokens_per_second',
  help: 'Decode rate of one call after its first token (output chunks / streaming time), by model and engine',
  labelNames: ['model', 'engine'] as const,
  buckets: [1, 2, 5, 10, 20, 40, 80, 160, 320],
  registers: [metricsRegistry],
});

export const routingDecisions = new Counter({
  name: 'inference_routing_decisions_total',
  help: 'Engines chosen by the router, by strategy and engine',
  labelNames: ['strategy', 'engine'] as const,
  registers: [metricsRegistry],
});

export const prefixHitEstimate = new Histogram({
  name: 'inference_prefix_hit_estimate_ratio',
  help: "Share of the prompt's blocks the prefix index expected the chosen engine to have cached",
  labelNames: ['model'] as const,
  buckets: [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1],
  registers: [metricsRegistry],
});

export const enginePrefixCacheHitRatio = new Gauge({
  name: 'inference_engine_prefix_cache_hit_ratio',
  help: "The engine's own prefix-cache hit ratio since it started (vllm:prefix_cache_hits / queries)",
  labelNames: ['engine'] as const,
  registers: [metricsRegistry],
});

export const engineKvCacheUsage = new Gauge({
  name: 'inference_engine_kv_cache_usage_ratio',
  help: 'KV-cache usage (0..1) the engine reported in its last scrape',
  labelNames: ['engine'] as const,
  registers: [metricsRegistry],
});

export const engineMetricsAge = new Gauge({
  name: 'inference_engine_metrics_age_seconds',
  help: 'Age of the newest usable metrics of each engine, at the last poll (stale metrics count as saturation)',
  labelNames: ['engine'] as const,
  registers: [metricsRegistry],
});

export const engineBreakerState = new Gauge({
  name: 'inference_engine_breaker_state',
  help: 'Circuit breaker of each engine: 0 closed, 1 half-open, 2 open',
  labelNames: ['engine'] as const,
  registers: [metricsRegistry],
});

export const queueDepth = new Gauge({
  name: 'inference_queue_depth',
  help: 'Requests waiting for admission, by priority',
  labelNames: ['priority'] as const,
  registers: [metricsRegistry],
});

export const queueWait = new Histogram({
  name: 'inference_queue_wait_seconds',
  help: 'Time a request waited for admission, by priority and result (admitted, rejected, cancelled)',
  labelNames: ['priority', 'result'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const shedRequests = new Counter({
  name: 'inference_shed_total',
  help: 'Requests refused by admission control, by priority and reason (deadline, queue_full, shed_batch, expired)',
  labelNames: ['priority', 'reason'] as const,
  registers: [metricsRegistry],
});

export const providerOverflow = new Counter({
  name: 'inference_provider_routed_total',
  help: 'Calls sent to an external provider, by provider and why (overflow, fallback)',
  labelNames: ['provider', 'reason'] as const,
  registers: [metricsRegistry],
});
