import { baseConfigSchema, csv, flag, z } from '@ai-platform/platform';

const engineUrl = z.url({ protocol: /^https?$/ }).transform((value) => value.replace(/\/+$/, ''));

export const configSchema = baseConfigSchema.extend({
  HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8082),
  GRPC_PORT: z.coerce.number().int().min(0).max(65535).default(50052),
  /** Comma-separated base URLs of vLLM-compatible engines, e.g. `http://127.0.0.1:8000`; may be empty with Kubernetes discovery. */
  ENGINES: csv().pipe(z.array(engineUrl)).default([]),
  /** Label selector of the engines' EndpointSlices (e.g. `app.kubernetes.io/name=vllm`); empty: no Kubernetes discovery. */
  ENGINE_DISCOVERY_SELECTOR: z.string().default(''),
  /** Namespace watched for EndpointSlices; default: the pod's own (service account namespace file), else `default`. */
  ENGINE_DISCOVERY_NAMESPACE: z.string().default(''),
  /** Name of the EndpointSlice port that serves the engine's HTTP API (the first port when empty). */
  ENGINE_DISCOVERY_PORT_NAME: z.string().default(''),
  ENGINE_DISCOVERY_SCHEME: z.enum(['http', 'https']).default('http'),
  DATABASE_URL: z.string().min(1),
  KAFKA_BROKERS: csv().pipe(z.array(z.string().regex(/^[\w.-]+:\d{1,5}$/, 'must be host:port')).min(1)),
  ENGINE_POLL_INTERVAL_MS: z.coerce.number().int().min(100).max(60_000).default(2_000),
  /** Timeout of one poll request (/health, /v1/models, /metrics). */
  ENGINE_POLL_TIMEOUT_MS: z.coerce.number().int().min(50).max(30_000).default(1_500),
  /**
   * Longest the engine may stay silent during a Generate call: waiting for the
   * response headers, for the first chunk, or between two chunks. An engine
   * silent for longer is treated as failed (retried when no token was sent yet).
   */
  ENGINE_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(30_000),
  MAX_RETRIES_BEFORE_FIRST_TOKEN: z.coerce.number().int().min(0).max(10).default(2),
  /** Base of the exponential backoff between attempts; jittered, capped at RETRY_BACKOFF_MAX_MS. */
  RETRY_BACKOFF_BASE_MS: z.coerce.number().int().min(0).max(10_000).default(100),
  RETRY_BACKOFF_MAX_MS: z.coerce.number().int().min(0).max(60_000).default(2_000),
  /**
   * Ask engines for `stream_options.continuous_usage_stats` (token counts in
   * every chunk, a vLLM extension) so aborted calls are metered exactly; turn
   * off for engines that reject unknown stream options.
   */
  ENGINE_CONTINUOUS_USAGE: flag(true),

  /** Routing strategy: prefix-load (default), least-load, round-robin, session-affinity, random. */
  ROUTING_STRATEGY: z.enum(['prefix-load', 'least-load', 'round-robin', 'session-affinity', 'random']).default('prefix-load'),
  /** Weighted scorers overriding the strategy's, e.g. `prefix:3,load:2,kv:1` (prefix, load, kv, session). */
  ROUTING_SCORERS: z.string().default(''),
  /** Requests above the least-loaded engine beyond which an engine gets no prefix credit (hot prefixes spread). */
  ROUTING_PREFIX_MAX_IMBALANCE: z.coerce.number().min(0).max(10_000).default(4),

  /** An engine is full at this many requests open or queued (ours + others'); vLLM's max_num_seqs is a good value. */
  ENGINE_MAX_LOAD: z.coerce.number().int().min(1).max(100_000).default(32),
  /** ... or this many waiting in its own queue. */
  ENGINE_MAX_WAITING: z.coerce.number().int().min(1).max(100_000).default(8),
  /** ... or at this KV-cache usage (0..1). */
  ENGINE_MAX_KV_USAGE: z.coerce.number().min(0).max(1).default(0.95),
  /** Metrics older than this count as saturation. */
  ENGINE_METRICS_STALE_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  /** Our requests an engine with stale metrics may still get. */
  STALE_ENGINE_MAX_INFLIGHT: z.coerce.number().int().min(0).max(1_000).default(1),

  /** Time-to-first-token targets per lane; a request that cannot start within 3/4 of its target is refused. */
  TTFT_TARGET_PREMIUM_MS: z.coerce.number().int().min(10).max(600_000).default(2_000),
  TTFT_TARGET_STANDARD_MS: z.coerce.number().int().min(10).max(600_000).default(5_000),
  TTFT_TARGET_BATCH_MS: z.coerce.number().int().min(10).max(3_600_000).default(60_000),
  QUEUE_MAX_PER_PRIORITY: z.coerce.number().int().min(0).max(1_000_000).default(1_000),
  /**
   * Share (0..1] of each engine's ENGINE_MAX_LOAD that batch requests may hold:
   * the rest is headroom kept for interactive lanes, so an interactive call
   * does not queue inside the engine behind batch prefills. 1 = no reservation.
   */
  BATCH_MAX_ENGINE_SHARE: z.coerce.number().gt(0).max(1).default(0.5),
  /**
   * Prompt tokens one engine prefills per second, to turn its prefill backlog
   * (uncached tokens of our requests awaiting their first token) into a wait:
   * an engine whose backlog is longer than a lane's TTFT target leaves after
   * queueing takes no request of that lane (batch: its share of premium's).
   * 0 ignores the backlog.
   */
  ENGINE_PREFILL_THROUGHPUT: z.coerce.number().min(0).max(10_000_000).default(10_000),
  /**
   * Cap each tenant's admitted, unfinished requests per model at its fair share
   * of the engines' slots (slots ÷ active tenants) while other tenants wait;
   * work-conserving: with nobody else waiting a tenant may use more.
   */
  TENANT_FAIR_SHARE: flag(true),
  /** Refuse batch requests (503) while interactive requests wait for engines. */
  SHED_BATCH_WHEN_SATURATED: flag(true),

  /** Consecutive failed or timed-out attempts that open an engine's circuit breaker. */
  BREAKER_FAILURE_THRESHOLD: z.coerce.number().int().min(1).max(1_000).default(5),
  BREAKER_OPEN_MS: z.coerce.number().int().min(10).max(600_000).default(5_000),
  BREAKER_MAX_OPEN_MS: z.coerce.number().int().min(10).max(3_600_000).default(60_000),

  /** External providers as engines (JSON array, see README); keys come from the env vars they name. */
  PROVIDERS: z.string().default(''),
  /** Longest silence accepted from an external provider (they queue and think longer than our engines). */
  PROVIDER_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(60_000),
}).refine((config) => config.ENGINES.length > 0 || config.ENGINE_DISCOVERY_SELECTOR !== '' || config.PROVIDERS.trim() !== '', {
  message: 'ENGINES must list at least one engine base URL (or set ENGINE_DISCOVERY_SELECTOR or PROVIDERS)',
  path: ['ENGINES'],
});

export type SchedulerConfig = z.infer<typeof configSchema>;
