import type { Usage } from '../engine/types';

/** Which OpenAI endpoint a response belongs to. */
export interface ResponseShape {
  kind: 'chat' | 'text';
  id: string;
  created: number;
  model: string;
}

export type OpenAiFinishReason = 'stop' | 'length';

export function usageBody(usage: Usage) {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
    prompt_tokens_details: { cached_tokens: usage.cachedTokens },
  };
}

function header(shape: ResponseShape, object: string) {
  return { id: shape.id, object, created: shape.created, model: shape.model };
}

/** Running token counts, sent in every chunk with vLLM's `stream_options.continuous_usage_stats`. */
export function runningUsage(promptTokens: number, completionTokens: number) {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/**
 * A streamed chunk: `chat.completion.chunk` with a `delta`, or
 * `text_completion` with `text`. The first chat chunk carries the role.
 * `usage`: left out (no include_usage), null (OpenAI's placeholder before the
 * usage chunk), or running counts (continuous usage stats).
 */
export function streamChunk(
  shape: ResponseShape,
  content: { text?: string; role?: boolean; finishReason?: OpenAiFinishReason },
  usageField: ReturnType<typeof runningUsage> | null | undefined,
) {
  const finish_reason = content.finishReason ?? null;
  const usage = usageField === undefined ? {} : { usage: usageField };
  if (shape.kind === 'chat') {
    const delta: Record<string, string> = {};
    if (content.role) delta.role = 'assistant';
    if (content.text !== undefined) delta.content = content.text;
    return { ...header(shape, 'chat.completion.chunk'), choices: [{ index: 0, delta, logprobs: null, finish_reason }], ...usage };
  }
  return { ...header(shape, 'text_completion'), choices: [{ index: 0, text: content.text ?? '', logprobs: null, finish_reason }], ...usage };
}

/** The last chunk before [DONE] when `stream_options.include_usage` is set. */
export function usageChunk(shape: ResponseShape, usage: Usage) {
  return { ...header(shape, shape.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion'), choices: [], usage: usageBody(usage) };
}

/** A complete (non-streamed) response. */
export function completeResponse(shape: ResponseShape, text: string, finishReason: OpenAiFinishReason, usage: Usage) {
  if (shape.kind === 'chat') {
    return {
      ...header(shape, 'chat.completion'),
      choices: [{ index: 0, message: { role: 'assistant', content: text }, logprobs: null, finish_reason: finishReason }],
      usage: usageBody(usage),
    };
  }
  return {
    ...header(shape, 'text_completion'),
    choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason }],
    usage: usageBody(usage),
  };
}
