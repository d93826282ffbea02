import { baseConfigSchema, csv, z } from '@ai-platform/platform';

const engineUrl = z.url({ protocol: /^https?$/ }).transform((value) => value.replace(/\/+$/, ''));

export const configSchema = baseConfigSchema.extend({
  HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8082),
  GRPC_PORT: z.coerce.number().int().min(0).max(65535).default(50052),
  /** Comma-separated base URLs of vLLM-compatible engines, e.g. `http://127.0.0.1:8000`. */
  ENGINES: csv().pipe(z.array(engineUrl).min(1, 'must list at least one engine base URL')),
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
  ENGINE_CONTINUOUS_USAGE: z.enum(['true', 'false']).default('true').transform((value) => value === 'true'),
});

export type SchedulerConfig = z.infer<typeof configSchema>;
