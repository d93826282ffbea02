import { EngineFailure, engineErrorMessage, type ChatCompletionRequest, type EngineUsage, type EngineWire } from '../engines/chat-stream';
import type { ProviderEngine } from './provider-engine';

export const ANTHROPIC_VERSION = '2023-06-01';
/** The Messages API requires max_tokens; ours may be 0 ("the engine's default"). */
const DEFAULT_MAX_TOKENS = 1024;

const STOP_REASONS: Record<string, string> = { end_turn: 'stop', stop_sequence: 'stop', max_tokens: 'length', tool_use: 'tool_calls', refusal: 'content_filter' };

/** Our messages in the Messages API's shape: system and developer text go to `system`, tool results become user turns. */
export function toAnthropicBody(body: ChatCompletionRequest, model: string): Record<string, unknown> {
  const system = body.messages.filter((m) => m.role === 'system' || m.role === 'developer').map((m) => m.content);
  const messages = body.messages
    .filter((m) => m.role !== 'system' && m.role !== 'developer' && m.content.length > 0)
    .map((m) => ({ role: m.role === 'assistant' ? 'assistant' : 'user', content: m.role === 'tool' ? `Tool result:\n${m.content}` : m.content }));
  return {
    model,
    max_tokens: body.max_tokens ?? DEFAULT_MAX_TOKENS,
    stream: true,
    messages,
    ...(system.length > 0 ? { system: system.join('\n\n') } : {}),
    ...(body.temperature !== undefined ? { temperature: Math.min(1, body.temperature) } : {}),
    ...(body.top_p !== undefined ? { top_p: body.top_p } : {}),
    ...(body.stop && body.stop.length > 0 ? { stop_sequences: body.stop } : {}),
  };
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : 0;
}

function parseJson(data: string, what: string): Record<string, unknown> {
  try {
    const value = JSON.parse(data) as unknown;
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new EngineFailure('protocol', `provider sent a ${what} event that is not a JSON object: ${JSON.stringify(data.slice(0, 200))}`, { retryable: true });
}

/**
 * Anthropic's Messages API. Streams named events: `message_start` (input
 * usage, cache reads), `content_block_delta` (text), `message_delta` (stop
 * reason, output usage), `message_stop`; `ping` is ignored and `error` fails
 * the stream. Input tokens we meter = input + cache reads + cache writes (all
 * are prompt tokens), cached = cache reads.
 */
export const ANTHROPIC_WIRE: EngineWire = {
  request: (engine, body) => {
    const provider = engine as ProviderEngine;
    return {
      url: `${engine.baseUrl}/v1/messages`,
      headers: { 'anthropic-version': ANTHROPIC_VERSION, ...((provider.apiKey ? { 'x-api-key': provider.apiKey } : {}) as Record<string, string>) },
      body: toAnthropicBody(body, provider.providerModel(body.model)),
    };
  },
  reader: () => {
    const usage: EngineUsage = { promptTokens: 0, completionTokens: 0, cachedTokens: 0 };
    let started = false;
    return (event) => {
      switch (event.event) {
        case 'message_start': {
          const message = parseJson(event.data, event.event).message as { usage?: Record<string, unknown> } | undefined;
          const raw = message?.usage ?? {};
          usage.cachedTokens = count(raw.cache_read_input_tokens);
          usage.promptTokens = count(raw.input_tokens) + usage.cachedTokens + count(raw.cache_creation_input_tokens);
          usage.completionTokens = count(raw.output_tokens);
          started = true;
          return { text: '', usage: { ...usage } };
        }
        case 'content_block_delta': {
          if (!started) throw new EngineFailure('protocol', 'provider sent content before message_start', { retryable: true });
          const delta = parseJson(event.data, event.event).delta as { type?: unknown; text?: unknown } | undefined;
          return { text: delta?.type === 'text_delta' && typeof delta.text === 'string' ? delta.text : '' };
        }
        case 'message_delta': {
          const parsed = parseJson(event.data, event.event) as { delta?: { stop_reason?: unknown }; usage?: Record<string, unknown> };
          if (parsed.usage?.output_tokens !== undefined) usage.completionTokens = count(parsed.usage.output_tokens);
          const reason = typeof parsed.delta?.stop_reason === 'string' ? (STOP_REASONS[parsed.delta.stop_reason] ?? parsed.delta.stop_reason) : undefined;
          return { text: '', usage: { ...usage }, ...(reason ? { finishReason: reason } : {}) };
        }
        case 'message_stop':
          return 'done';
        case 'error': {
          const message = engineErrorMessage(event.data);
          throw new EngineFailure('stream', `provider reported an error in the stream: ${message}`, { retryable: true, engineMessage: message });
        }
        default:
          return 'skip'; // ping, content_block_start/stop, and event types added later
      }
    };
  },
};
