import { Body, Controller, HttpCode, Inject, Post } from '@nestjs/common';
import { ApiError, z } from '@ai-platform/platform';
import { LlamaEngine } from '../engine/llama-engine';
import { CompletionRunner } from './completion-runner';
import { chatMessageSchema, messageText, parseBody } from './schemas';

const tokenizeSchema = z.union(
  [
    z.object({ model: z.string().nullish(), prompt: z.string() }),
    z.object({ model: z.string().nullish(), messages: z.array(chatMessageSchema).min(1, 'must contain at least one message') }),
  ],
  { error: 'send {"prompt": string} or {"messages": [...]}' },
);

const detokenizeSchema = z.object({
  model: z.string().nullish(),
  tokens: z.array(z.number().int().min(0), { error: 'must be an array of token ids' }),
});

/**
 * vLLM's `/tokenize` and `/detokenize`: token counts and ids with this
 * model's tokenizer and chat template, e.g. for the scheduler's prefix-aware
 * routing or a caller's exact input-token count.
 */
@Controller()
export class TokenizeController {
  constructor(
    @Inject(LlamaEngine) private readonly engine: LlamaEngine,
    @Inject(CompletionRunner) private readonly runner: CompletionRunner,
  ) {}

  @Post('tokenize')
  @HttpCode(200)
  tokenize(@Body() body: unknown) {
    const input = parseBody(tokenizeSchema, body);
    if (input.model) this.runner.assertModel(input.model);
    const prompt =
      'prompt' in input
        ? this.engine.prepareCompletion(input.prompt)
        : this.engine.prepareChat(input.messages.map((m) => ({ role: m.role === 'developer' ? 'system' : m.role, content: messageText(m.content) })));
    return { count: prompt.tokens.length, max_model_len: this.engine.maxModelLen, tokens: prompt.tokens, token_strs: null };
  }

  @Post('detokenize')
  @HttpCode(200)
  detokenize(@Body() body: unknown) {
    const input = parseBody(detokenizeSchema, body);
    if (input.model) this.runner.assertModel(input.model);
    const size = this.engine.vocabularySize;
    const bad = input.tokens.findIndex((token) => token >= size);
    if (bad !== -1) throw ApiError.badRequest(`tokens[${bad}]: ${input.tokens[bad]} is not a token id (vocabulary size ${size})`, `tokens[${bad}]`);
    return { prompt: this.engine.detokenize(input.tokens) };
  }
}
