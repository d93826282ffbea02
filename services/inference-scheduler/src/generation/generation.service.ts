import type { MessageInitShape } from '@bufbuild/protobuf';
import { Inject, Injectable } from '@nestjs/common';
import type { inference } from '@ai-platform/contracts';
import { CONFIG, GrpcError, GrpcStatus, LOGGER, type CallInfo, type Logger } from '@ai-platform/platform';
import type { SchedulerConfig } from '../config';
import { CallAborted, EngineFailure, streamChatCompletion, type EngineUsage } from '../engines/chat-stream';
import type { Engine } from '../engines/engine';
import { EnginePool } from '../engines/engine-pool';
import { generateRequests, retries, timeToFirstToken } from '../metrics';
import { estimateInputTokens } from '../metering/token-estimate';
import { UsageRecorder, type UsageStatus } from '../metering/usage-recorder';
import { ENGINE_PICKER, type EnginePicker, type RouteRequest } from '../routing/picker';
import { toEngineRequest, validateGenerate, type ValidatedGenerate } from './validate';

type GenerateResponseInit = MessageInitShape<typeof inference.GenerateResponseSchema>;

/** Progress of one Generate call, across its attempts. */
interface CallState {
  /** The engine of the current (last) attempt. */
  engine?: Engine;
  /** Some engine had the request (an HTTP answer, or we were cut off waiting for one). */
  reached: boolean;
  attempts: number;
  /** Content chunks sent to the caller: the output token count when the engine's is missing. */
  outputChunks: number;
  usage?: EngineUsage;
  finishReason?: string;
  status?: UsageStatus;
  recorded: boolean;
}

/** Tokens to meter for a finished call. */
export function meteredTokens(
  status: UsageStatus,
  state: { outputChunks: number; usage?: EngineUsage },
  messages: ReadonlyArray<{ role: string; content: string }>,
): { inputTokens: number; cachedInputTokens: number; outputTokens: number } {
  if (status === 'failed' && state.outputChunks === 0) {
    // The caller got nothing: nothing is charged.
    return { inputTokens: 0, cachedInputTokens: 0, outputTokens: 0 };
  }
  if (status === 'completed' && state.usage) {
    return { inputTokens: state.usage.promptTokens, cachedInputTokens: state.usage.cachedTokens, outputTokens: state.usage.completionTokens };
  }
  // Aborted, failed mid-stream, or an engine that sent no usage: the latest
  // running counts when the engine sent them, else the conservative estimate.
  return {
    inputTokens: state.usage?.promptTokens ?? estimateInputTokens(messages),
    cachedInputTokens: state.usage?.cachedTokens ?? 0,
    outputTokens: Math.max(state.outputChunks, state.usage?.completionTokens ?? 0),
  };
}

function abortError(reason: unknown): GrpcError {
  return reason instanceof GrpcError ? reason : new GrpcError(GrpcStatus.CANCELLED, 'cancelled');
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new CallAborted(signal.reason));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new CallAborted(signal.reason));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Full-jitter exponential backoff: a random delay in [d/2, d], d = base * 2^(retry-1) capped at max. */
export function backoffDelay(retry: number, baseMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, retry - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * One Generate call: validate, route, stream from the engine, retry on another
 * engine while no token has been sent, and meter the call exactly once.
 */
@Injectable()
export class GenerationService {
  constructor(
    @Inject(CONFIG) private readonly config: SchedulerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(EnginePool) private readonly pool: EnginePool,
    @Inject(ENGINE_PICKER) private readonly picker: EnginePicker,
    @Inject(UsageRecorder) private readonly recorder: UsageRecorder,
  ) {}

  async *generate(request: inference.GenerateRequest, callInfo: CallInfo): AsyncGenerator<GenerateResponseInit> {
    const startedAt = new Date();
    const started = performance.now();
    let call: ValidatedGenerate;
    try {
      call = validateGenerate(request, callInfo.context);
      this.checkModel(call);
    } catch (error) {
      const code = error instanceof GrpcError ? error.code : undefined;
      const outcome = code === GrpcStatus.NOT_FOUND ? 'not_found' : code === GrpcStatus.UNAVAILABLE ? 'unavailable' : 'invalid';
      generateRequests.inc({ model: request.model.slice(0, 256), engine: '', outcome });
      throw error;
    }

    const state: CallState = { reached: false, attempts: 0, outputChunks: 0, recorded: false };
    const route: RouteRequest = { model: call.model, messages: call.messages, tenantId: call.tenantId, priority: call.priority };
    const body = toEngineRequest(call, { continuousUsage: this.config.ENGINE_CONTINUOUS_USAGE });
    const tried = new Set<string>();
    let failure: unknown;
    try {
      for (;;) {
        let engine: Engine;
        try {
          engine = this.route(call, route, tried, failure);
        } catch (error) {
          state.status = 'failed';
          throw error;
        }
        tried.add(engine.id);
        state.engine = engine;
        state.attempts++;
        state.usage = undefined;
        state.finishReason = undefined;
        const release = this.pool.acquire(engine);
        try {
          for await (const event of streamChatCompletion(engine, body, { signal: callInfo.signal, idleTimeoutMs: this.config.ENGINE_REQUEST_TIMEOUT_MS, requestId: call.requestId })) {
            if (event.type === 'open') {
              state.reached = true;
              continue;
            }
            if (event.usage) state.usage = event.usage;
            if (event.finishReason) state.finishReason = event.finishReason;
            if (event.text.length > 0) {
              if (state.outputChunks === 0) timeToFirstToken.observe({ model: call.model, engine: engine.id }, (performance.now() - started) / 1000);
              state.outputChunks++;
              yield { event: { case: 'delta', value: { text: event.text } } };
            }
          }
          break;
        } catch (error) {
          failure = error;
          if (error instanceof CallAborted) {
            state.reached = true; // the engine may have started on it: meter conservatively
            state.status = 'aborted';
            throw abortError(error.reason);
          }
          if (!(error instanceof EngineFailure)) {
            state.status = 'failed';
            throw error;
          }
          if (error.kind !== 'connect') state.reached = true;
          if (state.outputChunks > 0) {
            state.status = 'failed';
            this.logger.warn({ engine: engine.id, model: call.model, output_tokens: state.outputChunks, err: error.message }, 'engine failed mid-stream');
            throw new GrpcError(
              error.kind === 'protocol' ? GrpcStatus.INTERNAL : GrpcStatus.UNAVAILABLE,
              `engine ${engine.id} failed after ${state.outputChunks} tokens had been streamed: ${error.message}`,
            );
          }
          if (!error.retryable) {
            state.status = 'failed';
            throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `engine rejected the request: ${error.options.engineMessage ?? error.message}`);
          }
          // An engine we cannot reach, or one failing with a server fault, leaves
          // the rotation until its next good poll. Overload (503, 429) and
          // slowness do not: they are retried elsewhere but are no sign of death.
          const status = error.options.status;
          if (error.kind === 'connect' || (status !== undefined && status >= 500 && status !== 503) || status === 404) {
            this.pool.markFailed(engine, error.message);
          }
          if (state.attempts > this.config.MAX_RETRIES_BEFORE_FIRST_TOKEN) {
            state.status = 'failed';
            throw new GrpcError(GrpcStatus.UNAVAILABLE, `model ${call.model}: all ${state.attempts} attempts failed before the first token; last: ${error.message}`);
          }
          retries.inc({ model: call.model, reason: error.kind });
        } finally {
          release();
        }
        const delay = backoffDelay(state.attempts, this.config.RETRY_BACKOFF_BASE_MS, this.config.RETRY_BACKOFF_MAX_MS);
        this.logger.warn(
          { engine: engine.id, model: call.model, attempt: state.attempts, retry_in_ms: delay, err: failure instanceof Error ? failure.message : String(failure) },
          'engine attempt failed before the first token; retrying',
        );
        try {
          await sleep(delay, callInfo.signal);
        } catch (aborted) {
          state.status = 'aborted';
          throw abortError((aborted as CallAborted).reason);
        }
      }

      state.status = 'completed';
      const engine = state.engine!;
      const tokens = await this.finish(call, state, startedAt, started);
      yield {
        event: {
          case: 'completion',
          value: {
            finishReason: state.finishReason ?? 'stop',
            usage: { inputTokens: tokens.inputTokens, cachedInputTokens: tokens.cachedInputTokens, outputTokens: tokens.outputTokens },
            engineId: engine.id,
          },
        },
      };
    } finally {
      // Also reached when the caller stops reading mid-stream (cancel): the
      // engine request is closed by now, and the call is metered as aborted.
      if (!state.recorded) {
        state.status ??= 'aborted';
        await this.finish(call, state, startedAt, started, failure);
      }
    }
  }

  /** Meters the call once (when an engine had it) and logs its end. */
  private async finish(call: ValidatedGenerate, state: CallState, startedAt: Date, started: number, failure?: unknown) {
    state.recorded = true;
    const status = state.status ?? 'aborted';
    const tokens = meteredTokens(status, state, call.messages);
    const engineId = state.engine?.id ?? '';
    const outcome = status === 'failed' && !state.reached ? 'unavailable' : status;
    generateRequests.inc({ model: call.model, engine: state.reached ? engineId : '', outcome });
    const fields = {
      model: call.model,
      engine: engineId,
      status,
      attempts: state.attempts,
      output_tokens: tokens.outputTokens,
      duration_ms: Math.round(performance.now() - started),
      ...(failure && status !== 'completed' ? { err: failure instanceof Error ? failure.message : String(failure) } : {}),
    };
    if (status === 'failed') this.logger.warn(fields, 'generate failed');
    else this.logger.info(fields, status === 'completed' ? 'generate completed' : 'generate aborted');
    if (!state.reached) return tokens;
    try {
      await this.recorder.record({
        tenantId: call.tenantId,
        userId: call.userId,
        apiKeyId: call.apiKeyId,
        requestId: call.requestId,
        reservationId: call.reservationId,
        conversationId: call.conversationId,
        model: call.model,
        engineId,
        priority: call.priority,
        status,
        ...tokens,
        startedAt,
        finishedAt: new Date(),
      });
    } catch (error) {
      this.logger.error({ err: error, request_id: call.requestId }, 'usage event could not be built');
    }
    return tokens;
  }

  private checkModel(call: ValidatedGenerate) {
    if (this.pool.knownModels().length === 0) {
      throw new GrpcError(GrpcStatus.UNAVAILABLE, 'no engine has reported its models yet');
    }
    if (!this.pool.isKnownModel(call.model)) {
      const available = this.pool.availableModels().map((model) => model.id);
      throw new GrpcError(GrpcStatus.NOT_FOUND, `model ${JSON.stringify(call.model)} is not served here; available models: ${available.length > 0 ? available.join(', ') : '(none ready)'}`);
    }
    const contextLength = this.pool.availableModels().find((model) => model.id === call.model)?.contextLength ?? 0;
    if (call.maxTokens !== undefined && contextLength > 0 && call.maxTokens >= contextLength) {
      throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `sampling.max_tokens (${call.maxTokens}) must be less than the context length of ${call.model} (${contextLength})`);
    }
  }

  private route(call: ValidatedGenerate, route: RouteRequest, tried: ReadonlySet<string>, lastFailure: unknown): Engine {
    const candidates = this.pool.candidates(call.model);
    if (candidates.length === 0) {
      const last = lastFailure instanceof Error ? `; last error: ${lastFailure.message}` : '';
      throw new GrpcError(GrpcStatus.UNAVAILABLE, `no healthy engine serves model ${call.model} right now${last}`);
    }
    const untried = candidates.filter((engine) => !tried.has(engine.id));
    return this.picker.pick(untried.length > 0 ? untried : candidates, route);
  }
}
