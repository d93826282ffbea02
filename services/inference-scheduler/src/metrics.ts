import { Counter, Gauge, Histogram, metricsRegistry } from '@ai-platform/platform';

/** Generate calls by model, engine (empty when none was reached) and outcome. */
export const generateRequests = new Counter({
  name: 'inference_requests_total',
  help: 'Generate calls by model, engine and outcome (completed, aborted, failed, invalid, not_found, unavailable)',
  labelNames: ['model', 'engine', 'outcome'] as const,
  registers: [metricsRegistry],
});

export const timeToFirstToken = new Histogram({
  name: 'inference_time_to_first_token_seconds',
  help: 'Time from receiving a Generate call to its first token, retries included',
  labelNames: ['model', 'engine'] as const,
  buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60],
  registers: [metricsRegistry],
});

export const generatedTokens = new Counter({
  name: 'inference_tokens_total',
  help: 'Tokens metered, by model and kind (input, cached_input, output)',
  labelNames: ['model', 'kind'] as const,
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
