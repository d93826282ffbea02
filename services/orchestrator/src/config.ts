import { baseConfigSchema, grpcAddress, z } from '@ai-platform/platform';

export const configSchema = baseConfigSchema.extend({
  HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8081),
  GRPC_PORT: z.coerce.number().int().min(0).max(65535).default(50051),
  DATABASE_URL: z.string().startsWith('postgres'),
  INFERENCE_URL: grpcAddress(),
  /** Most recent stored messages sent back to the model as context. */
  HISTORY_MAX_MESSAGES: z.coerce.number().int().min(0).max(1000).default(40),
  INFERENCE_TIMEOUT_MS: z.coerce.number().int().min(1000).default(300_000),
});

export type OrchestratorConfig = z.infer<typeof configSchema>;
