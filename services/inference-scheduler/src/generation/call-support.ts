import { GrpcError, GrpcStatus } from '@ai-platform/platform';
import { CallAborted, type EngineUsage } from '../engines/chat-stream';
import { estimateInputTokens } from '../metering/token-estimate';
import type { UsageStatus } from '../metering/usage-recorder';

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

export function abortError(reason: unknown): GrpcError {
  return reason instanceof GrpcError ? reason : new GrpcError(GrpcStatus.CANCELLED, 'cancelled');
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
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
 * A lower bound of a prompt's tokens: no tokenizer in use packs more than 8
 * UTF-8 bytes into one token on average, so a prompt above context * 8 bytes
 * cannot fit. Used to refuse obviously oversized prompts without an engine
 * round trip; the engine's own 400 covers the rest.
 */
export function minimumPromptTokens(messages: ReadonlyArray<{ content: string }>): number {
  let bytes = 0;
  for (const message of messages) bytes += Buffer.byteLength(message.content, 'utf8');
  return Math.floor(bytes / 8);
}
