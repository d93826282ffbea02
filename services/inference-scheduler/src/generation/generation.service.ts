import type { MessageInitShape } from '@bufbuild/protobuf';
import { Inject, Injectable } from '@nestjs/common';
import type { inference } from '@ai-platform/contracts';
import { CONFIG, GrpcError, GrpcStatus, LOGGER, type CallInfo, type Logger } from '@ai-platform/platform';
import type { SchedulerConfig } from '../config';
import { CallAborted, EngineFailure, streamChatCompletion, type EngineUsage } from '../engines/chat-stream';
import type { Engine } from '../engines/engine';
import { EnginePool } from '../engines/engine-pool';
import { FlowController, type Admission } from '../flow/flow-controller';
import { laneOf } from '../flow/lanes';
import { PREFILL_SHARE_OF_TTFT_TARGET, promptShape, type PromptShape } from '../flow/headroom';
import { beginPrefill } from '../flow/prefill';
import { estimateInputTokens } from '../metering/token-estimate';
import { generateRequests, interTokenLatency, outputTokensPerSecond, retries, timeToFirstToken } from '../metrics';
import { UsageRecorder, type UsageStatus } from '../metering/usage-recorder';
import { ProviderRegistry } from '../providers/provider-registry';
import type { RouteRequest } from '../routing/picker';
import { abortError, backoffDelay, meteredTokens, minimumPromptTokens, sleep } from './call-support';
import { EngineSelector } from './engine-selector';
import { toEngineRequest, validateGenerate, type ValidatedGenerate } from './validate';

export { backoffDelay, meteredTokens } from './call-support';

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

/**
 * One Generate call: validate, wait for admission, route, stream from the
 * engine, retry on another engine while no token has been sent, and meter the
 * call exactly once.
 */
@Injectable()
export class GenerationService {
  constructor(
    @Inject(CONFIG) private readonly config: SchedulerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(EnginePool) private readonly pool: EnginePool,
    @Inject(ProviderRegistry) private readonly providers: ProviderRegistry,
    @Inject(FlowController) private readonly flow: FlowController,
    @Inject(EngineSelector) private readonly selector: EngineSelector,
    @Inject(UsageRecorder) private readonly recorder: UsageRecorder,
  ) {}

  async *generate(request: inference.GenerateRequest, callInfo: CallInfo): AsyncGenerator<GenerateResponseInit> {
    const startedAt = new Date();
    const started = performance.now();
    let call: ValidatedGenerate;
    let admission: Admission;
    let prompt: PromptShape;
    try {
      call = validateGenerate(request, callInfo.context);
      this.checkModel(call);
      prompt = promptShape(call.messages);
      admission = await this.flow.admit({ model: call.model, lane: laneOf(call.priority), tenantId: call.tenantId, signal: callInfo.signal, prompt });
    } catch (error) {
      const code = error instanceof GrpcError ? error.code : undefined;
      const outcome =
        error instanceof CallAborted ? 'aborted'
        : code === GrpcStatus.NOT_FOUND ? 'not_found'
        : code === GrpcStatus.RESOURCE_EXHAUSTED || (code === GrpcStatus.UNAVAILABLE && error instanceof GrpcError && error.trailers) ? 'shed'
        : code === GrpcStatus.UNAVAILABLE ? 'unavailable'
        : 'invalid';
      generateRequests.inc({ model: request.model.slice(0, 256), engine: '', outcome });
      if (error instanceof CallAborted) throw abortError(error.reason);
      throw error;
    }

    const state: CallState = { reached: false, attempts: 0, outputChunks: 0, recorded: false };
    const route: RouteRequest = {
      model: call.model,
      messages: call.messages,
      tenantId: call.tenantId,
      priority: laneOf(call.priority),
      sessionKey: call.conversationId || (call.userId ? `${call.tenantId}/${call.userId}` : ''),
      prompt,
      ...(laneOf(call.priority) === 'batch' ? {} : { prefillDeadline: startedAt.getTime() + this.flow.targetMs(laneOf(call.priority)) * PREFILL_SHARE_OF_TTFT_TARGET }),
    };
    const body = toEngineRequest(call, { continuousUsage: this.config.ENGINE_CONTINUOUS_USAGE });
    const tried = new Set<string>();
    let failure: unknown;
    try {
      for (;;) {
        let engine: Engine;
        try {
          engine = this.selector.select(route, tried, failure, admission.overflow);
        } catch (error) {
          state.status = 'failed';
          throw error;
        }
        tried.add(engine.id);
        state.engine = engine;
        state.attempts++;
        state.usage = undefined;
        state.finishReason = undefined;
        const release = this.pool.acquire(engine, route.priority === 'batch');
        const prefilled = beginPrefill(engine, route.uncachedTokens ?? estimateInputTokens(call.messages));
        route.uncachedTokens = undefined;
        admission.started();
        engine.breaker.onAttempt();
        let firstTokenAt = 0;
        let lastTokenAt = 0;
        try {
          const idleTimeoutMs = engine.kind === 'vllm' ? this.config.ENGINE_REQUEST_TIMEOUT_MS : this.config.PROVIDER_REQUEST_TIMEOUT_MS;
          for await (const event of streamChatCompletion(engine, body, { signal: callInfo.signal, idleTimeoutMs, requestId: call.requestId })) {
            if (event.type === 'open') {
              state.reached = true;
              continue;
            }
            if (event.usage) state.usage = event.usage;
            if (event.finishReason) state.finishReason = event.finishReason;
            if (event.text.length > 0) {
              const now = performance.now();
              if (state.outputChunks === 0) {
                prefilled();
                admission.firstToken();
                this.flow.pump(); // the engine's prefill backlog shrank: waiters may fit now
                firstTokenAt = now;
                timeToFirstToken.observe({ model: call.model, engine: engine.id, priority: route.priority }, (now - started) / 1000);
                if (engine.breaker.onSuccess()) this.logger.info({ engine: engine.id }, 'circuit breaker closed');
                this.pool.reportBreaker(engine);
              } else {
                interTokenLatency.observe({ model: call.model, engine: engine.id }, (now - lastTokenAt) / 1000);
              }
              lastTokenAt = now;
              state.outputChunks++;
              yield { event: { case: 'delta', value: { text: event.text } } };
            }
          }
          if (state.outputChunks === 0) engine.breaker.onSuccess();
          if (state.outputChunks > 1 && lastTokenAt > firstTokenAt) {
            outputTokensPerSecond.observe({ model: call.model, engine: engine.id }, ((state.outputChunks - 1) * 1000) / (lastTokenAt - firstTokenAt));
          }
          break;
        } catch (error) {
          failure = error;
          if (error instanceof CallAborted) {
            engine.breaker.onInconclusive();
            state.reached = true; // the engine may have started on it: meter conservatively
            state.status = 'aborted';
            throw abortError(error.reason);
          }
          if (!(error instanceof EngineFailure)) {
            state.status = 'failed';
            throw error;
          }
          if (error.kind !== 'connect') state.reached = true;
          // Refusals of the request itself (4xx) say nothing about the engine's health.
          if (error.retryable) this.recordEngineFailure(engine, error);
          else engine.breaker.onInconclusive();
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
          if (state.attempts > this.config.MAX_RETRIES_BEFORE_FIRST_TOKEN) {
            state.status = 'failed';
            throw new GrpcError(GrpcStatus.UNAVAILABLE, `model ${call.model}: all ${state.attempts} attempts failed before the first token; last: ${error.message}`);
          }
          retries.inc({ model: call.model, reason: error.kind });
        } finally {
          prefilled();
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
      admission.started();
      admission.finished();
      // Also reached when the caller stops reading mid-stream (cancel): the
      // engine request is closed by now, and the call is metered as aborted.
      if (!state.recorded) {
        state.status ??= 'aborted';
        await this.finish(call, state, startedAt, started, failure);
      }
    }
  }

  /**
   * Counts a failed attempt against the engine's breaker; an engine we cannot
   * reach or that fails with a server fault also leaves the rotation until its
   * next good poll. Overload (503, 429) and slowness do not: they are retried
   * elsewhere but are no sign of death.
   */
  private recordEngineFailure(engine: Engine, error: EngineFailure) {
    if (engine.breaker.onFailure()) this.logger.warn({ engine: engine.id, failures: engine.breaker.failures, err: error.message }, 'circuit breaker opened');
    this.pool.reportBreaker(engine);
    const status = error.options.status;
    if (engine.kind === 'vllm' && (error.kind === 'connect' || (status !== undefined && status >= 500 && status !== 503) || status === 404)) {
      this.pool.markFailed(engine, error.message);
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
    const servedByProvider = this.providers.serves(call.model);
    if (this.pool.knownModels().length === 0 && !servedByProvider) {
      throw new GrpcError(GrpcStatus.UNAVAILABLE, 'no engine has reported its models yet');
    }
    if (!this.pool.isKnownModel(call.model) && !servedByProvider) {
      const available = [...new Set([...this.pool.availableModels().map((model) => model.id), ...this.providers.engines.flatMap((engine) => engine.models.map((model) => model.id))])].sort();
      throw new GrpcError(GrpcStatus.NOT_FOUND, `model ${JSON.stringify(call.model)} is not served here; available models: ${available.length > 0 ? available.join(', ') : '(none ready)'}`);
    }
    const contextLength = this.pool.availableModels().find((model) => model.id === call.model)?.contextLength ?? 0;
    if (call.maxTokens !== undefined && contextLength > 0 && call.maxTokens >= contextLength) {
      throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `sampling.max_tokens (${call.maxTokens}) must be less than the context length of ${call.model} (${contextLength})`);
    }
    const minimumTokens = minimumPromptTokens(call.messages);
    if (contextLength > 0 && minimumTokens + (call.maxTokens ?? 0) >= contextLength) {
      throw new GrpcError(
        GrpcStatus.INVALID_ARGUMENT,
        `the prompt is too long for ${call.model}: at least ${minimumTokens} tokens${call.maxTokens ? ` plus max_tokens ${call.maxTokens}` : ''}, context length ${contextLength}`,
      );
    }
  }
}
