import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { CONFIG, HealthRegistry, LOGGER, type Logger } from '@ai-platform/platform';
import type { ChatHistoryItem, ChatWrapper, Llama, LlamaContext, LlamaModel } from 'node-llama-cpp' with { 'resolution-mode': 'import' };
import type { EngineConfig } from '../config';
import { loadLlama } from './llama-runtime';
import { EngineMetrics } from './metrics';
import { runGeneration, type Slot } from './generation';
import { SequencePool, QueueFullError } from './sequence-pool';
import type { ChatTurn, GenerationEvent, PreparedPrompt, SamplingParams } from './types';

/** vLLM's default KV block size; the engine's token capacity is reported in blocks of it. */
const BLOCK_SIZE = 16;

export class EngineNotReadyError extends Error {}
export { QueueFullError };

/**
 * The model on CPU through node-llama-cpp: one GGUF loaded once, one context
 * with PARALLEL_SEQUENCES sequences of CONTEXT_SIZE tokens each. A request
 * holds a sequence while it runs; node-llama-cpp batches the running
 * sequences' tokens into shared decode steps. Requests beyond the free
 * sequences wait in a FIFO queue.
 */
@Injectable()
export class LlamaEngine implements OnModuleInit, OnApplicationShutdown {
  private llama?: Llama;
  private model?: LlamaModel;
  private context?: LlamaContext;
  private chatWrapper?: ChatWrapper;
  private pool?: SequencePool<Slot>;
  private metrics?: EngineMetrics;
  private readonly running = new Set<Slot>();
  private readonly aborts = new Set<AbortController>();
  private disposed = false;
  /** Tokens one request may use (prompt + completion): vLLM's `max_model_len`. */
  maxModelLen = 0;
  loadedInMs = 0;

  constructor(
    @Inject(CONFIG) private readonly config: EngineConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(HealthRegistry) private readonly health: HealthRegistry,
  ) {}

  get modelName(): string {
    return this.config.MODEL_NAME;
  }

  get defaultMaxTokens(): number {
    return this.config.DEFAULT_MAX_TOKENS;
  }

  /** Where the weights come from (vLLM's `root` in /v1/models). */
  get modelPath(): string {
    return this.config.MODEL_PATH;
  }

  get ready(): boolean {
    return !!this.context && !this.disposed;
  }

  /** Loads the model before the HTTP server listens (like vLLM: no API until the engine is up). */
  async onModuleInit(): Promise<void> {
    this.health.register('model', async () => {
      if (!this.ready) throw new Error(this.disposed ? 'model unloaded' : 'model loading');
    });
    const started = performance.now();
    const { resolveChatWrapper } = await import('node-llama-cpp');
    const cfg = this.config;
    this.llama = await loadLlama(cfg.THREADS, this.logger);
    this.model = await this.llama.loadModel({ modelPath: cfg.MODEL_PATH, gpuLayers: 0 });
    const perSequence = Math.min(cfg.CONTEXT_SIZE, this.model.trainContextSize);
    this.context = await this.model.createContext({
      sequences: cfg.PARALLEL_SEQUENCES,
      contextSize: perSequence,
      threads: cfg.THREADS,
      // Full KV for sliding-window layers so any cached prefix can be reused.
      swaFullCache: cfg.ENABLE_PREFIX_CACHING,
      failedCreationRemedy: false,
    });
    this.maxModelLen = Math.min(perSequence, this.context.contextSize);
    this.chatWrapper = resolveChatWrapper(this.model) ?? undefined;
    if (!this.chatWrapper) throw new Error(`no chat template found for ${cfg.MODEL_PATH}`);
    const slots: Slot[] = [];
    for (let id = 0; id < cfg.PARALLEL_SEQUENCES; id++) slots.push({ id, sequence: this.context.getSequence() });
    this.pool = new SequencePool(slots, cfg.MAX_WAITING_REQUESTS);
    const capacity = this.maxModelLen * cfg.PARALLEL_SEQUENCES;
    this.metrics = new EngineMetrics(cfg.MODEL_NAME, {
      running: () => this.running.size,
      waiting: () => this.pool?.waiting ?? 0,
      kvCacheUsage: () => {
        let used = 0;
        for (const slot of this.running) used += slot.sequence.disposed ? 0 : slot.sequence.nextTokenIndex;
        return Math.min(1, used / capacity);
      },
    }, { blockSize: BLOCK_SIZE, numBlocks: Math.floor(capacity / BLOCK_SIZE), prefixCaching: cfg.ENABLE_PREFIX_CACHING, maxModelLen: this.maxModelLen });
    this.loadedInMs = Math.round(performance.now() - started);
    this.logger.info(
      {
        model: cfg.MODEL_PATH,
        served_as: cfg.MODEL_NAME,
        chat_template: this.chatWrapper.wrapperName,
        sequences: cfg.PARALLEL_SEQUENCES,
        context_per_sequence: this.maxModelLen,
        threads: cfg.THREADS,
        prefix_caching: cfg.ENABLE_PREFIX_CACHING,
        load_ms: this.loadedInMs,
      },
      'model loaded',
    );
  }

  /** Renders chat messages with the model's own chat template and tokenizes them. */
  prepareChat(messages: ChatTurn[]): PreparedPrompt {
    const { model, chatWrapper } = this.loaded();
    const history: ChatHistoryItem[] = messages.map((message): ChatHistoryItem =>
      message.role === 'system' ? { type: 'system', text: message.content }
      : message.role === 'user' ? { type: 'user', text: message.content }
      : { type: 'model', response: [message.content] },
    );
    // A final assistant message is continued; otherwise a new assistant turn is opened.
    if (messages.at(-1)?.role !== 'assistant') history.push({ type: 'model', response: [] });
    const state = chatWrapper.generateContextState({ chatHistory: history });
    const templateStops: string[] = [];
    for (const trigger of state.stopGenerationTriggers) {
      // Triggers made of special tokens (EOS, <end_of_turn>) end generation as end-of-generation tokens;
      // plain-text ones are matched in the output text.
      if (trigger.values.every((value) => typeof value === 'string')) templateStops.push(trigger.values.join(''));
    }
    return { tokens: state.contextText.tokenize(model.tokenizer), templateStops };
  }

  /** Tokenizes a raw completion prompt (with the model's BOS, as vLLM's tokenizer adds it). */
  prepareCompletion(prompt: string): PreparedPrompt {
    const { model } = this.loaded();
    const tokens = model.tokenize(prompt, false);
    const bos = model.tokens.bos;
    if (bos != null && model.tokens.shouldPrependBosToken && tokens[0] !== bos) tokens.unshift(bos);
    return { tokens, templateStops: [] };
  }

  /** Token ids back to text (vLLM's /detokenize). */
  detokenize(tokens: number[]): string {
    const { model } = this.loaded();
    return model.detokenize(tokens as unknown as Parameters<LlamaModel['detokenize']>[0]);
  }

  /** Size of the vocabulary: valid token ids are 0..vocabularySize-1. */
  get vocabularySize(): number {
    const tokenizer = (this.model?.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: unknown[] } } } | undefined)?.tokenizer;
    return tokenizer?.ggml?.tokens?.length ?? 0;
  }

  /**
   * Starts a generation: yields text deltas, then one `end` event. Throws at
   * once (before anything is sent) when the engine is not ready or the queue is
   * full. Aborting `signal` ends it at the next token, or takes it out of the queue.
   */
  generate(prompt: PreparedPrompt, params: SamplingParams, signal: AbortSignal): AsyncGenerator<GenerationEvent> {
    const { model, pool, metrics } = this.loaded();
    if (pool.busy === pool.size && pool.waiting >= this.config.MAX_WAITING_REQUESTS) throw new QueueFullError(this.config.MAX_WAITING_REQUESTS);
    const controller = new AbortController();
    const forward = () => controller.abort(signal.reason);
    if (signal.aborted) forward();
    else signal.addEventListener('abort', forward, { once: true });
    this.aborts.add(controller);
    const done = () => {
      signal.removeEventListener('abort', forward);
      this.aborts.delete(controller);
    };
    return runGeneration(
      {
        model,
        pool,
        metrics,
        running: this.running,
        prefixCaching: this.config.ENABLE_PREFIX_CACHING,
        prefillChunk: this.context?.batchSize ?? 512,
        logger: this.logger,
      },
      prompt,
      params,
      controller.signal,
      done,
    );
  }

  /** After the HTTP server closed and streams drained: stop what is left and free the model. */
  async onApplicationShutdown(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.pool?.rejectWaiting(new EngineNotReadyError('engine shutting down'));
    for (const controller of this.aborts) controller.abort(new EngineNotReadyError('engine shutting down'));
    // Let aborted generations leave node-llama-cpp before the context goes away.
    for (let i = 0; i < 50 && this.running.size > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    await this.context?.dispose();
    await this.model?.dispose();
    await this.llama?.dispose();
    this.logger.info('model unloaded');
  }

  private loaded() {
    if (!this.model || !this.context || !this.pool || !this.metrics || !this.chatWrapper || this.disposed) {
      throw new EngineNotReadyError(this.disposed ? 'engine is shutting down' : 'model is not loaded yet');
    }
    return { model: this.model, context: this.context, pool: this.pool, metrics: this.metrics, chatWrapper: this.chatWrapper };
  }
}
