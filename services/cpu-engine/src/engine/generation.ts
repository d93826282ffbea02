import type { Logger } from '@ai-platform/platform';
import type { LlamaContextSequence, LlamaModel, SequenceEvaluateOptions, Token } from 'node-llama-cpp' with { 'resolution-mode': 'import' };
import type { EngineMetrics, FinishedReason } from './metrics';
import { AbortedWhileWaitingError, type SequencePool } from './sequence-pool';
import { TextStream } from './text-stream';
import type { GenerationEvent, PreparedPrompt, SamplingParams } from './types';

/** One of the context's sequences. */
export interface Slot {
  id: number;
  sequence: LlamaContextSequence;
}

export interface GenerationDeps {
  model: LlamaModel;
  pool: SequencePool<Slot>;
  metrics: EngineMetrics;
  /** Slots currently generating (read by the running / KV-usage gauges). */
  running: Set<Slot>;
  prefixCaching: boolean;
  /** Prompt tokens evaluated per step, so an abort or other sequences are not stuck behind a long prefill. */
  prefillChunk: number;
  logger: Logger;
}

const seconds = (from: number, to: number) => Math.max(0, to - from) / 1000;

/**
 * Aligns the sequence's KV state with the prompt: with prefix caching the
 * longest common prefix with the previous request on this sequence is kept
 * and everything after it erased; without, the state is cleared. Either way
 * nothing of the previous request survives beyond tokens identical to this
 * prompt's own. Returns the number of reused tokens.
 */
async function alignSequence(sequence: LlamaContextSequence, tokens: Token[], prefixCaching: boolean): Promise<number> {
  if (!prefixCaching) {
    if (sequence.nextTokenIndex > 0) await sequence.clearHistory();
    return 0;
  }
  // At least the last prompt token is evaluated again: its logits sample the first output token.
  const keep = Math.min(sequence.compareContextTokens(tokens).firstDifferentIndex, tokens.length - 1);
  if (sequence.nextTokenIndex > keep) await sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
  return sequence.nextTokenIndex;
}

function commonPrefix(sequence: LlamaContextSequence, tokens: Token[]): number {
  return sequence.nextTokenIndex === 0 ? 0 : sequence.compareContextTokens(tokens).firstDifferentIndex;
}

function samplingOptions(params: SamplingParams, generated: Token[], prompt: Token[]): SequenceEvaluateOptions {
  const options: SequenceEvaluateOptions = {
    temperature: params.temperature,
    topP: params.topP,
    topK: params.topK,
    minP: params.minP,
    seed: params.seed,
    yieldEogToken: true,
  };
  if (params.repetitionPenalty !== 1 || params.presencePenalty > 0 || params.frequencyPenalty > 0) {
    options.repeatPenalty = {
      punishTokens: () => (params.repetitionPenalty !== 1 ? [...prompt.slice(-64), ...generated] : generated).slice(-64),
      penalty: params.repetitionPenalty,
      presencePenalty: params.presencePenalty,
      frequencyPenalty: params.frequencyPenalty,
    };
  }
  return options;
}

/**
 * One request through the engine: wait for a sequence (FIFO), prefill the
 * prompt in chunks, then sample token by token until an end-of-generation
 * token, a stop string, `max_tokens`, or an abort. The sequence goes back to
 * the pool in every case, and the request is counted in vLLM's metrics.
 */
export async function* runGeneration(
  deps: GenerationDeps,
  prompt: PreparedPrompt,
  params: SamplingParams,
  signal: AbortSignal,
  onDone: () => void,
): AsyncGenerator<GenerationEvent> {
  const { model, pool, metrics, running } = deps;
  const tokens = prompt.tokens as Token[];
  const arrival = performance.now();
  metrics.requestMaxTokens.observe(params.maxTokens);
  let slot: Slot;
  try {
    slot = await pool.acquire(signal, (candidate) => (deps.prefixCaching ? commonPrefix(candidate.sequence, tokens) : 0));
  } catch (error) {
    onDone();
    if (!(error instanceof AbortedWhileWaitingError)) throw error;
    const now = performance.now();
    metrics.queueTime.observe(seconds(arrival, now));
    metrics.e2e.observe(seconds(arrival, now));
    metrics.finished('abort');
    yield { type: 'end', finishReason: 'abort', usage: { promptTokens: tokens.length, completionTokens: 0, cachedTokens: 0 } };
    return;
  }

  const scheduled = performance.now();
  running.add(slot);
  const sequence = slot.sequence;
  const generated: Token[] = [];
  const text = new TextStream(
    (next, last) => model.detokenize(next as Token[], false, last as Token[]),
    [...params.stop, ...prompt.templateStops],
  );
  let finishReason: FinishedReason | undefined;
  let cached = 0;
  let firstTokenAt = 0;
  let lastTokenAt = 0;
  let failed = false;
  try {
    cached = await alignSequence(sequence, tokens, deps.prefixCaching);
    metrics.prefixQueries.inc(tokens.length);
    metrics.prefixHits.inc(cached);
    const pending = tokens.slice(cached);
    while (pending.length > 1 && !signal.aborted) {
      await sequence.evaluateWithoutGeneratingNewTokens(pending.splice(0, Math.min(deps.prefillChunk, pending.length - 1)));
    }
    if (signal.aborted) {
      finishReason = 'abort';
    } else {
      for await (const token of sequence.evaluate(pending, samplingOptions(params, generated, tokens))) {
        const now = performance.now();
        generated.push(token);
        metrics.generationTokens.inc();
        if (generated.length === 1) {
          firstTokenAt = now;
          metrics.promptTokens.inc(tokens.length);
          metrics.ttft.observe(seconds(arrival, now));
        } else {
          metrics.interToken.observe(seconds(lastTokenAt, now));
          metrics.timePerOutputToken.observe(seconds(lastTokenAt, now));
        }
        lastTokenAt = now;
        if (!params.ignoreEos && model.isEogToken(token)) {
          finishReason = 'stop';
          break;
        }
        const step = text.push(token);
        if (step.delta) yield { type: 'text', text: step.delta, completionTokens: generated.length };
        if (step.stopped) {
          finishReason = 'stop';
          break;
        }
        if (generated.length >= params.maxTokens) {
          finishReason = 'length';
          break;
        }
        if (signal.aborted) {
          finishReason = 'abort';
          break;
        }
      }
      // node-llama-cpp also ends the loop on its own when the context is full: that is `length`.
      finishReason ??= signal.aborted ? 'abort' : 'length';
    }
    if (finishReason !== 'abort') {
      const rest = text.finish();
      if (rest.delta) yield { type: 'text', text: rest.delta, completionTokens: generated.length };
    }
  } catch (error) {
    failed = true;
    finishReason = 'abort';
    throw error;
  } finally {
    // Also reached when the consumer stops iterating early (generator return()).
    finishReason ??= 'abort';
    const end = performance.now();
    metrics.queueTime.observe(seconds(arrival, scheduled));
    metrics.inferenceTime.observe(seconds(scheduled, end));
    metrics.e2e.observe(seconds(arrival, end));
    if (firstTokenAt) {
      metrics.prefillTime.observe(seconds(scheduled, firstTokenAt));
      metrics.decodeTime.observe(seconds(firstTokenAt, end));
      metrics.requestPromptTokens.observe(tokens.length);
      if (generated.length > 1) metrics.requestTimePerOutputToken.observe(seconds(firstTokenAt, lastTokenAt) / (generated.length - 1));
    }
    metrics.requestGenerationTokens.observe(generated.length);
    metrics.finished(finishReason);
    running.delete(slot);
    if (failed || !deps.prefixCaching) {
      await sequence.clearHistory().catch((error: unknown) => deps.logger.warn({ err: error }, 'could not clear a sequence'));
    }
    pool.release(slot);
    onDone();
  }
  yield { type: 'end', finishReason, usage: { promptTokens: tokens.length, completionTokens: generated.length, cachedTokens: cached } };
}
