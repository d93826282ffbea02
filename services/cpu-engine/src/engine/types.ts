import type { FinishedReason } from './metrics';

export type { FinishedReason };

/** One chat message after validation; content already flattened to text. */
export interface ChatTurn {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** A prompt rendered and tokenized for this model. */
export interface PreparedPrompt {
  tokens: number[];
  /** Stop strings the chat template implies (besides the model's end-of-generation tokens). */
  templateStops: string[];
}

/** Sampling and stopping, in vLLM's terms. */
export interface SamplingParams {
  maxTokens: number;
  temperature: number;
  topP: number;
  /** 0 = disabled. */
  topK: number;
  minP: number;
  seed?: number;
  stop: string[];
  /** Keep generating past end-of-sequence tokens (vLLM's `ignore_eos`, for benchmarks). */
  ignoreEos: boolean;
  repetitionPenalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens whose KV state was reused from an earlier request (prefix cache hit). */
  cachedTokens: number;
}

export type GenerationEvent =
  /** New output text; `completionTokens` = tokens sampled so far (for vLLM's continuous usage stats). */
  | { type: 'text'; text: string; completionTokens: number }
  | { type: 'end'; finishReason: FinishedReason; usage: Usage };
