import { randomUUID } from 'node:crypto';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Inject, Injectable } from '@nestjs/common';
import type { inference } from '@ai-platform/contracts';
import { CONFIG, GrpcError, GrpcStatus, LOGGER, type CallInfo, type Logger } from '@ai-platform/platform';
import type { SchedulerConfig } from '../config';
import type { Engine } from '../engines/engine';
import { EnginePool } from '../engines/engine-pool';
import { discard, errorMessage, readBodyText, send, type EngineResponse } from '../engines/http';
import { UsageRecorder, type UsageStatus } from '../metering/usage-recorder';
import { embedRequests } from '../metrics';
import { priorityName } from './validate';

type EmbedResponseInit = MessageInitShape<typeof inference.EmbedResponseSchema>;

/** OpenAI's limit on inputs per embeddings request. */
export const MAX_EMBED_INPUTS = 2048;
const MAX_INPUT_CHARS = 100_000;
const ERROR_BODY_LIMIT = 4_096;
/** Models whose non-serving engines are remembered; any model name can arrive, so the memory is bounded. */
const REMEMBERED_MODELS = 256;

/** What an engine said to one embeddings request. */
type Attempt =
  | { kind: 'served'; vectors: number[][]; tokens: number }
  | { kind: 'not_served' }
  | { kind: 'refused'; message: string }
  | { kind: 'failed'; message: string };

/**
 * One Embed call: validate, send it to an engine that serves the embedding
 * model (engines that list it as one first, then the rest least loaded first;
 * one that answers 404 does not serve it and is remembered as such until it
 * says otherwise), and meter the call exactly once, with the tokens the engine
 * read as embedding tokens. vLLM lists a pooling model in /v1/models like any
 * other, so for vLLM pods the 404 is what tells them apart.
 */
@Injectable()
export class EmbeddingService {
  /** Engines that answered 404 for a model: tried last. */
  private readonly notServing = new Map<string, Set<string>>();

  constructor(
    @Inject(CONFIG) private readonly config: SchedulerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(EnginePool) private readonly pool: EnginePool,
    @Inject(UsageRecorder) private readonly recorder: UsageRecorder,
  ) {}

  async embed(request: inference.EmbedRequest, call: CallInfo): Promise<EmbedResponseInit> {
    const startedAt = new Date();
    const { tenantId, userId, requestId } = call.context;
    if (!tenantId) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'x-tenant-id metadata is required: every model call is metered to a tenant');
    if (!request.model) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'model is required');
    if (request.inputs.length === 0) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'inputs must not be empty');
    if (request.inputs.length > MAX_EMBED_INPUTS) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `at most ${MAX_EMBED_INPUTS} inputs per call`);
    const bad = request.inputs.findIndex((input) => input.length === 0 || input.length > MAX_INPUT_CHARS);
    if (bad >= 0) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `inputs[${bad}] must be between 1 and ${MAX_INPUT_CHARS} characters`);

    const engines = this.order(request.model);
    if (engines.length === 0) throw new GrpcError(GrpcStatus.UNAVAILABLE, 'no healthy engine right now');
    let failure: string | undefined;
    let refusal: string | undefined;
    let reached: Engine | undefined;
    for (const engine of engines) {
      if (call.signal.aborted) break;
      const release = this.pool.acquire(engine);
      let attempt: Attempt;
      try {
        attempt = await this.send(engine, request, call.signal);
      } finally {
        release();
      }
      if (attempt.kind === 'not_served') {
        this.remember(request.model, engine, false);
        continue;
      }
      this.remember(request.model, engine, true);
      if (attempt.kind === 'refused') {
        // The engine read nothing it bills: not metered, the caller frees its hold.
        refusal = attempt.message;
        break;
      }
      reached = engine;
      if (attempt.kind === 'served') {
        if (attempt.vectors.length !== request.inputs.length) {
          failure = `engine ${engine.id} answered ${attempt.vectors.length} embeddings for ${request.inputs.length} inputs`;
          break;
        }
        await this.meter(request, call, engine, 'completed', attempt.tokens, startedAt);
        return { embeddings: attempt.vectors.map((values) => ({ values })), tokens: attempt.tokens, engineId: engine.id };
      }
      failure = attempt.message;
      this.pool.markFailed(engine, attempt.message);
    }
    const status: UsageStatus = call.signal.aborted ? 'aborted' : 'failed';
    // A call some engine took is metered even when it failed: it settles the caller's hold (at 0).
    if (reached) await this.meter(request, call, reached, status, 0, startedAt);
    embedRequests.inc({ model: request.model, outcome: call.signal.aborted ? 'aborted' : refusal ? 'invalid' : reached ? 'failed' : 'not_found' });
    this.logger.warn({ model: request.model, tenant_id: tenantId, user_id: userId, request_id: requestId, err: refusal ?? failure }, 'embed failed');
    if (call.signal.aborted) throw new GrpcError(GrpcStatus.CANCELLED, 'cancelled by the caller');
    if (refusal) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, refusal);
    if (failure) throw new GrpcError(GrpcStatus.UNAVAILABLE, `embedding failed on every engine that serves ${request.model}; last: ${failure}`);
    throw new GrpcError(GrpcStatus.NOT_FOUND, `The model \`${request.model}\` does not exist or is not an embedding model served here.`);
  }

  /**
   * Healthy vLLM-protocol engines: those that list the model as an embedding model first,
   * those known not to serve it last, least loaded first within each.
   */
  private order(model: string): Engine[] {
    const skip = this.notServing.get(model) ?? new Set<string>();
    const rank = (engine: Engine) => (engine.embeddingModels.some((served) => served.id === model) ? 0 : skip.has(engine.id) ? 2 : 1);
    return this.pool.engines
      .filter((engine) => engine.healthy && engine.kind === 'vllm')
      .sort((a, b) => rank(a) - rank(b) || a.inFlight - b.inFlight);
  }

  private remember(model: string, engine: Engine, serves: boolean) {
    const set = this.notServing.get(model) ?? new Set<string>();
    if (serves) set.delete(engine.id);
    else set.add(engine.id);
    this.notServing.delete(model);
    if (set.size > 0) this.notServing.set(model, set);
    // Oldest first in a Map: forget the least recently seen model.
    if (this.notServing.size > REMEMBERED_MODELS) this.notServing.delete(this.notServing.keys().next().value!);
  }

  private async send(engine: Engine, request: inference.EmbedRequest, signal: AbortSignal): Promise<Attempt> {
    let response: EngineResponse;
    try {
      response = await send(`${engine.baseUrl}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: request.model, input: request.inputs, encoding_format: 'float' }),
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.config.ENGINE_REQUEST_TIMEOUT_MS)]),
      });
    } catch (error) {
      return { kind: 'failed', message: `cannot reach engine ${engine.id}: ${errorMessage(error)}` };
    }
    if (response.status === 404) {
      await discard(response);
      return { kind: 'not_served' };
    }
    if (response.status === 400) return { kind: 'refused', message: engineMessage(await readBodyText(response, ERROR_BODY_LIMIT)) };
    if (!response.ok) return { kind: 'failed', message: `engine ${engine.id} answered ${response.status}: ${engineMessage(await readBodyText(response, ERROR_BODY_LIMIT))}` };
    try {
      const body = (await response.body.json()) as { data?: Array<{ index?: number; embedding?: unknown }>; usage?: { prompt_tokens?: unknown } };
      const data = [...(body.data ?? [])].sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
      const vectors = data.map((item) => {
        if (!Array.isArray(item.embedding) || !item.embedding.every((value) => typeof value === 'number' && Number.isFinite(value))) throw new Error('an embedding is not an array of numbers');
        return item.embedding as number[];
      });
      const tokens = Number(body.usage?.prompt_tokens);
      if (!Number.isSafeInteger(tokens) || tokens < 0) throw new Error('usage.prompt_tokens is missing');
      return { kind: 'served', vectors, tokens };
    } catch (error) {
      return { kind: 'failed', message: `engine ${engine.id} sent an unreadable embeddings answer: ${errorMessage(error)}` };
    }
  }

  private async meter(request: inference.EmbedRequest, call: CallInfo, engine: Engine, status: UsageStatus, tokens: number, startedAt: Date) {
    const { tenantId, userId, requestId } = call.context;
    if (status === 'completed') embedRequests.inc({ model: request.model, outcome: 'completed' });
    try {
      await this.recorder.record({
        tenantId: tenantId!,
        userId: userId ?? '',
        apiKeyId: request.apiKeyId,
        requestId: requestId ?? randomUUID(),
        reservationId: request.reservationId,
        conversationId: '',
        model: request.model,
        engineId: engine.id,
        priority: priorityName(request.priority, call.context.priority),
        status,
        inputTokens: 0,
        cachedInputTokens: 0,
        outputTokens: 0,
        embeddingTokens: tokens,
        startedAt,
        finishedAt: new Date(),
      });
    } catch (error) {
      this.logger.error({ err: error, request_id: requestId }, 'usage event could not be built');
    }
  }
}

/** The `error.message` of an OpenAI-shaped error body, or the body itself. */
function engineMessage(text: string): string {
  try {
    const message = (JSON.parse(text) as { error?: { message?: unknown }; message?: unknown }).error?.message ?? (JSON.parse(text) as { message?: unknown }).message;
    if (typeof message === 'string' && message.length > 0) return message;
  } catch { /* not JSON */ }
  return text.slice(0, 500) || 'no details';
}
