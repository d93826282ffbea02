import { Inject, Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ApiError, DrainTracker, LOGGER, sendApiError, type ApiErrorType, type Logger } from '@ai-platform/platform';
import { EngineNotReadyError, LlamaEngine, QueueFullError } from '../engine/llama-engine';
import type { GenerationEvent, PreparedPrompt, SamplingParams } from '../engine/types';
import { completeResponse, runningUsage, streamChunk, usageChunk, type ResponseShape } from './format';
import type { ChatCompletionRequest } from './schemas';
import { SseStream } from './sse';

type SamplingFields = Pick<
  ChatCompletionRequest,
  'temperature' | 'top_p' | 'top_k' | 'min_p' | 'seed' | 'stop' | 'ignore_eos' | 'repetition_penalty' | 'presence_penalty' | 'frequency_penalty'
>;

export interface CompletionJob {
  shape: ResponseShape;
  prompt: PreparedPrompt;
  params: SamplingParams;
  stream: boolean;
  includeUsage: boolean;
  /** vLLM's `stream_options.continuous_usage_stats`: running usage in every chunk (with include_usage). */
  continuousUsage: boolean;
}

class ClientGone extends Error {}
class ShuttingDown extends Error {}

/** Engine conditions with a public meaning: busy or not (or no longer) serving, retry elsewhere. */
const publicError = (error: unknown): ApiError | undefined =>
  error instanceof QueueFullError || error instanceof EngineNotReadyError ? ApiError.unavailable(error.message, 1) : undefined;

const shutdownError = () => ApiError.unavailable('the engine is shutting down; retry the request on another replica', 1);

/**
 * What both completion endpoints share: the model check, sampling
 * parameters with vLLM's context-length rules, and running one generation
 * as SSE or as one JSON body, with client disconnects and shutdown wired in.
 */
@Injectable()
export class CompletionRunner {
  constructor(
    @Inject(LlamaEngine) private readonly engine: LlamaEngine,
    @Inject(DrainTracker) private readonly drain: DrainTracker,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** vLLM answers 404 NotFoundError for a model it does not serve. */
  assertModel(model: string): void {
    if (model !== this.engine.modelName) {
      throw new ApiError(404, 'NotFoundError' as ApiErrorType, `The model \`${model}\` does not exist.`, 'model_not_found', 'model');
    }
  }

  /** Builds sampling parameters; prompt + completion must fit in one sequence's context. */
  samplingParams(body: SamplingFields, maxTokens: number | null | undefined, promptTokens: number, promptParam: 'messages' | 'prompt'): SamplingParams {
    const limit = this.engine.maxModelLen;
    if (promptTokens >= limit) {
      throw ApiError.badRequest(
        `This model's maximum context length is ${limit} tokens. However, your request has ${promptTokens} input tokens. Please reduce the length of the input ${promptParam}.`,
        promptParam,
        'context_length_exceeded',
      );
    }
    if (maxTokens != null && promptTokens + maxTokens > limit) {
      throw ApiError.badRequest(
        `This model's maximum context length is ${limit} tokens. However, you requested ${promptTokens + maxTokens} tokens (${promptTokens} in the ${promptParam}, ${maxTokens} in the completion). Please reduce the length of the ${promptParam} or completion.`,
        'max_tokens',
        'context_length_exceeded',
      );
    }
    for (const name of ['presence_penalty', 'frequency_penalty'] as const) {
      if ((body[name] ?? 0) < 0) throw ApiError.badRequest(`${name}: negative values are not supported by this engine`, name);
    }
    return {
      maxTokens: maxTokens ?? Math.min(this.engine.defaultMaxTokens, limit - promptTokens),
      temperature: body.temperature ?? 1,
      topP: body.top_p ?? 1,
      topK: body.top_k == null || body.top_k < 1 ? 0 : body.top_k,
      minP: body.min_p ?? 0,
      seed: body.seed ?? undefined,
      stop: body.stop,
      ignoreEos: body.ignore_eos ?? false,
      repetitionPenalty: body.repetition_penalty ?? 1,
      presencePenalty: body.presence_penalty ?? 0,
      frequencyPenalty: body.frequency_penalty ?? 0,
    };
  }

  /** Runs the generation and writes the response (SSE or JSON). */
  async run(reply: FastifyReply, job: CompletionJob): Promise<void> {
    const abort = new AbortController();
    const onClose = () => {
      if (!reply.raw.writableFinished) abort.abort(new ClientGone('client disconnected'));
    };
    let events: AsyncGenerator<GenerationEvent>;
    try {
      events = this.engine.generate(job.prompt, job.params, abort.signal);
    } catch (error) {
      throw publicError(error) ?? error;
    }
    reply.raw.on('close', onClose);
    const sse = job.stream ? new SseStream(reply) : undefined;
    // On SIGTERM the stream may finish within the grace period; past it, it ends with an error event.
    const untrack = this.drain.track(() => {
      abort.abort(new ShuttingDown('shutdown grace period expired'));
      if (sse) sse.fail(shutdownError().toBody());
      else if (!reply.sent) sendApiError(reply, shutdownError());
    });
    try {
      if (sse) await this.stream(sse, events, job, abort.signal);
      else await this.respond(reply, events, job, abort.signal);
    } finally {
      untrack();
      reply.raw.off('close', onClose);
    }
  }

  private async stream(sse: SseStream, events: AsyncGenerator<GenerationEvent>, job: CompletionJob, signal: AbortSignal): Promise<void> {
    const { shape, includeUsage } = job;
    const promptTokens = job.prompt.tokens.length;
    const usageField = (completionTokens: number) =>
      !includeUsage ? undefined : job.continuousUsage ? runningUsage(promptTokens, completionTokens) : null;
    sse.open();
    try {
      if (shape.kind === 'chat') sse.send(streamChunk(shape, { role: true, text: '' }, usageField(0)));
      for await (const event of events) {
        if (event.type === 'text') {
          sse.send(streamChunk(shape, { text: event.text }, usageField(event.completionTokens)));
          continue;
        }
        if (event.finishReason === 'abort') {
          // Client gone: nothing to write. Forced shutdown: the drain callback wrote the error event.
          if (!(signal.reason instanceof ClientGone)) sse.fail(shutdownError().toBody());
          return;
        }
        const finish = { text: shape.kind === 'chat' ? undefined : '', finishReason: event.finishReason };
        sse.send(streamChunk(shape, finish, usageField(event.usage.completionTokens)));
        if (includeUsage) sse.send(usageChunk(shape, event.usage));
        sse.done();
      }
    } catch (error) {
      const known = publicError(error);
      if (!known) this.logger.error({ err: error }, 'generation failed mid-stream');
      sse.fail((known ?? new ApiError(500, 'server_error', 'generation failed', 'internal_error')).toBody());
    }
  }

  private async respond(reply: FastifyReply, events: AsyncGenerator<GenerationEvent>, job: CompletionJob, signal: AbortSignal): Promise<void> {
    try {
      await this.collect(reply, events, job, signal);
    } catch (error) {
      throw publicError(error) ?? error;
    }
  }

  private async collect(reply: FastifyReply, events: AsyncGenerator<GenerationEvent>, job: CompletionJob, signal: AbortSignal): Promise<void> {
    let text = '';
    for await (const event of events) {
      if (event.type === 'text') {
        text += event.text;
        continue;
      }
      if (event.finishReason === 'abort') {
        if (signal.reason instanceof ClientGone || reply.sent || reply.raw.destroyed) return;
        throw shutdownError();
      }
      await reply.header('content-type', 'application/json').send(completeResponse(job.shape, text, event.finishReason, event.usage));
    }
  }
}
