import { existsSync } from 'node:fs';
import { baseConfigSchema, flag, z } from '@ai-platform/platform';
import { defaultThreads } from './cpu';

/** Environment of the cpu-engine; see README.md for what each variable does. */
export const configSchema = baseConfigSchema.extend({
  // 0 = any free port (tests); vLLM's default port otherwise.
  HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8000),
  MODEL_PATH: z.string().min(1).refine((file) => existsSync(file), 'no such file (install the model: bash infra/local/model.sh)'),
  MODEL_NAME: z.string().min(1).default('gemma-3-270m'),
  /** A BERT embedding model in GGUF (infra/local/model.sh embeddings-gguf); unset: no /v1/embeddings. */
  EMBEDDING_MODEL_PATH: z.string().min(1).refine((file) => existsSync(file), 'no such file (bash infra/local/model.sh embeddings-gguf)').optional(),
  EMBEDDING_MODEL_NAME: z.string().min(1).default('all-minilm-l6-v2'),
  /**
   * Inputs one /v1/embeddings request may carry. Inputs are embedded one after another (~25 ms each on one
   * thread), so 256 keeps a request well inside the scheduler's 30 s engine timeout; OpenAI allows 2048.
   */
  EMBEDDING_MAX_INPUTS: z.coerce.number().int().min(1).max(2048).default(256),
  /** Parallel context sequences: requests generating at once; more wait in a FIFO queue. */
  PARALLEL_SEQUENCES: z.coerce.number().int().min(1).max(64).default(4),
  /** Tokens per sequence (prompt + completion): the `max_model_len` clients see. */
  CONTEXT_SIZE: z.coerce.number().int().min(128).max(131_072).default(4096),
  /** CPU threads for evaluation; defaults to the usable CPUs minus one (see cpu.ts). */
  THREADS: z.coerce.number().int().min(1).max(256).default(defaultThreads()),
  /** `max_tokens` when a request does not set one (capped by the room left in the context). */
  DEFAULT_MAX_TOKENS: z.coerce.number().int().min(1).default(256),
  /** Requests allowed to wait for a sequence; beyond it the engine answers 503. */
  MAX_WAITING_REQUESTS: z.coerce.number().int().min(0).default(1024),
  /** Reuse the KV state of a previous request's common prompt prefix (vLLM's automatic prefix caching). */
  ENABLE_PREFIX_CACHING: flag(true),
});

export type EngineConfig = z.infer<typeof configSchema>;
