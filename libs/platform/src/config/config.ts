import { z } from 'zod';

/** Settings every service reads from its environment. */
export const baseConfigSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  HTTP_HOST: z.string().default('127.0.0.1'),
  HTTP_PORT: z.coerce.number().int().min(0).max(65535),
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).max(600_000).default(20_000),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  OTEL_TRACES_SAMPLER_RATIO: z.coerce.number().min(0).max(1).default(1),
});

export type BaseConfig = z.infer<typeof baseConfigSchema>;

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid configuration:\n  ${issues.join('\n  ')}`);
  }
}

/**
 * Parses `env` against the service's schema. Every problem is reported with the
 * variable's name, so a misconfigured pod says what to fix in its first log line.
 */
export function parseConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    const name = issue.path.join('.') || '(root)';
    const present = typeof issue.path[0] === 'string' && env[issue.path[0]] !== undefined;
    return `${name}: ${present ? issue.message : 'is required but not set'}`;
  });
  throw new ConfigError(issues);
}

/** Comma-separated list of non-empty strings. */
export const csv = () =>
  z
    .string()
    .transform((value) => value.split(',').map((item) => item.trim()).filter(Boolean));

/** An on/off setting: `true`, `false`, `1` or `0`; `defaultValue` when unset. */
export const flag = (defaultValue: boolean) =>
  z
    .enum(['true', 'false', '1', '0'])
    .transform((value) => value === 'true' || value === '1')
    .default(defaultValue);

/** `host:port` address of a gRPC peer. */
export const grpcAddress = () => z.string().regex(/^[\w.-]+:\d{1,5}$/, 'must be host:port');

export { z };
