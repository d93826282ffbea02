import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { CONFIG, HealthRegistry, LOGGER, type Logger } from '@ai-platform/platform';
import type { Llama, LlamaEmbeddingContext, LlamaModel } from 'node-llama-cpp' with { 'resolution-mode': 'import' };
import type { EngineConfig } from '../config';
import { EngineNotReadyError } from './llama-engine';
import { loadLlama } from './llama-runtime';

export interface Embedding {
  vector: number[];
  tokens: number;
}

/** An input longer than the model's context; the caller turns it into a 400. */
export class InputTooLongError extends Error {
  constructor(readonly index: number, readonly tokens: number, readonly limit: number) {
    super(`input[${index}] has ${tokens} tokens; ${limit} is the most this embedding model reads`);
  }
}

/**
 * The embedding model (EMBEDDING_MODEL_PATH, a BERT GGUF with mean pooling)
 * through node-llama-cpp, like vLLM's pooling runner: one embedding context,
 * inputs embedded one after another, each vector L2-normalised as
 * sentence-transformers' Normalize module does. Not configured: not loaded.
 */
@Injectable()
export class EmbeddingEngine implements OnModuleInit, OnApplicationShutdown {
  private llama?: Llama;
  private model?: LlamaModel;
  private context?: LlamaEmbeddingContext;
  /** Embeddings run one at a time on the one context; this is the tail of that queue. */
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;
  /** Tokens one input may have, [CLS] and [SEP] included. */
  maxInputTokens = 0;
  dimensions = 0;

  constructor(
    @Inject(CONFIG) private readonly config: EngineConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(HealthRegistry) private readonly health: HealthRegistry,
  ) {}

  get configured(): boolean {
    return this.config.EMBEDDING_MODEL_PATH !== undefined;
  }

  get modelName(): string {
    return this.config.EMBEDDING_MODEL_NAME;
  }

  get modelPath(): string {
    return this.config.EMBEDDING_MODEL_PATH ?? '';
  }

  get maxInputs(): number {
    return this.config.EMBEDDING_MAX_INPUTS;
  }

  async onModuleInit(): Promise<void> {
    const modelPath = this.config.EMBEDDING_MODEL_PATH;
    if (!modelPath) return;
    this.health.register('embedding_model', async () => {
      if (!this.context || this.disposed) throw new Error(this.disposed ? 'embedding model unloaded' : 'embedding model loading');
    });
    const started = performance.now();
    // llama.cpp warns on every pooled batch ("some input tokens were not marked as outputs"): errors only.
    this.llama = await loadLlama(this.config.THREADS, this.logger, true);
    this.model = await this.llama.loadModel({ modelPath, gpuLayers: 0 });
    this.maxInputTokens = this.model.trainContextSize;
    this.context = await this.model.createEmbeddingContext({ contextSize: this.maxInputTokens, threads: this.config.THREADS });
    this.dimensions = this.model.embeddingVectorSize;
    this.logger.info(
      { model: modelPath, served_as: this.modelName, dimensions: this.dimensions, max_input_tokens: this.maxInputTokens, load_ms: Math.round(performance.now() - started) },
      'embedding model loaded',
    );
  }

  /** Tokens of `text` as the model reads it: its pieces plus [CLS] and [SEP]. */
  countTokens(text: string): number {
    return this.loaded().model.tokenize(text).length + 2;
  }

  /** Embeds every input in order; refuses the whole request if one is too long. */
  async embed(inputs: string[], signal?: AbortSignal): Promise<Embedding[]> {
    const { context } = this.loaded();
    const counts = inputs.map((text) => this.countTokens(text));
    const tooLong = counts.findIndex((count) => count > this.maxInputTokens);
    if (tooLong >= 0) throw new InputTooLongError(tooLong, counts[tooLong]!, this.maxInputTokens);
    const run = this.queue.then(async () => {
      const out: Embedding[] = [];
      for (const [index, text] of inputs.entries()) {
        // A caller that left stops the rest of its batch, not the ones queued behind it.
        if (signal?.aborted) throw signal.reason ?? new Error('aborted');
        if (this.disposed) throw new EngineNotReadyError('engine is shutting down');
        const { vector } = await context.getEmbeddingFor(text);
        out.push({ vector: normalised(vector), tokens: counts[index]! });
      }
      return out;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.disposed || !this.configured) return;
    this.disposed = true;
    await this.queue;
    await this.context?.dispose();
    await this.model?.dispose();
    await this.llama?.dispose();
    this.logger.info('embedding model unloaded');
  }

  private loaded() {
    if (!this.configured) throw new EngineNotReadyError('no embedding model is configured');
    if (!this.model || !this.context || this.disposed) throw new EngineNotReadyError(this.disposed ? 'engine is shutting down' : 'embedding model is not loaded yet');
    return { model: this.model, context: this.context };
  }
}

function normalised(vector: readonly number[]): number[] {
  let sum = 0;
  for (const value of vector) sum += value * value;
  const norm = Math.sqrt(sum) || 1;
  return vector.map((value) => value / norm);
}
