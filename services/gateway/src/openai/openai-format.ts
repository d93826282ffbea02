import type { common, orchestrator } from '@ai-platform/contracts';

export interface CompletionMeta {
  id: string;
  created: number;
  model: string;
}

export function usageOf(usage: common.TokenUsage | undefined) {
  const prompt = usage?.inputTokens ?? 0;
  const completionTokens = usage?.outputTokens ?? 0;
  return {
    prompt_tokens: prompt,
    completion_tokens: completionTokens,
    total_tokens: prompt + completionTokens,
    prompt_tokens_details: { cached_tokens: usage?.cachedInputTokens ?? 0 },
  };
}

export function chunk(meta: CompletionMeta, delta: { role?: string; content?: string }, finishReason: string | null) {
  return {
    id: meta.id,
    object: 'chat.completion.chunk',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  };
}

export function completion(meta: CompletionMeta, text: string, finished: orchestrator.Finished) {
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: finished.finishReason || 'stop' }],
    usage: usageOf(finished.usage),
  };
}
