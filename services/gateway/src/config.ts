import { baseConfigSchema, grpcAddress, z } from '@ai-platform/platform';

export const configSchema = baseConfigSchema.extend({
  // The public port: GATEWAY_PORT, else HTTP_PORT, else 8080.
  HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(Number(process.env.GATEWAY_PORT ?? 8080)),
  DATABASE_URL: z.string().startsWith('postgres'),
  ORCHESTRATOR_URL: grpcAddress(),
  BILLING_URL: grpcAddress(),
  BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  /** Largest max_tokens a request may ask for. */
  MAX_OUTPUT_TOKENS: z.coerce.number().int().min(1).default(4096),
  DEFAULT_MAX_TOKENS: z.coerce.number().int().min(1).default(512),
  UPSTREAM_TIMEOUT_MS: z.coerce.number().int().min(1000).default(300_000),
  MODELS_CACHE_MS: z.coerce.number().int().min(0).default(5_000),
});

export type GatewayConfig = z.infer<typeof configSchema>;
