import { parseChatChunk, type EngineWire } from '../engines/chat-stream';
import type { ProviderEngine } from './provider-engine';

/**
 * OpenAI's Chat Completions API (and compatible ones): the same stream format
 * as vLLM, so only the request differs: the provider's model name, a bearer
 * key, `baseUrl` including the version (`https://api.openai.com/v1`), and no
 * vLLM-only stream options. Usage arrives in the last chunk (`include_usage`),
 * cached prompt tokens in `prompt_tokens_details.cached_tokens`.
 */
export const OPENAI_WIRE: EngineWire = {
  request: (engine, body) => {
    const provider = engine as ProviderEngine;
    const { stream_options: _vllmOptions, ...rest } = body;
    return {
      url: `${engine.baseUrl}/chat/completions`,
      headers: (provider.apiKey ? { authorization: `Bearer ${provider.apiKey}` } : {}) as Record<string, string>,
      body: { ...rest, model: provider.providerModel(body.model), stream_options: { include_usage: true } },
    };
  },
  reader: () => (event) => {
    if (event.data === '[DONE]') return 'done';
    if (event.event !== 'message') return 'skip';
    return parseChatChunk(event.data);
  },
};

