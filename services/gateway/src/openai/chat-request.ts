import { z } from 'zod';
import { parseBody } from '../edge/parse-body';

const textPart = z.object({ type: z.literal('text'), text: z.string() }).strict();

const message = z
  .object({
    role: z.enum(['system', 'developer', 'user', 'assistant']),
    content: z.union([z.string(), z.array(textPart).min(1)]),
    name: z.string().max(64).optional(),
  })
  .strict();

/**
 * The `/v1/chat/completions` body. Unknown fields are refused, as OpenAI does,
 * so a typo never silently changes what a caller pays for.
 */
export const chatCompletionRequest = z
  .object({
    model: z.string().min(1).max(256),
    messages: z.array(message).min(1, 'messages must contain at least one message').max(1000),
    stream: z.boolean().optional(),
    stream_options: z.object({ include_usage: z.boolean().optional() }).strict().nullable().optional(),
    max_tokens: z.number().int().min(1).nullable().optional(),
    max_completion_tokens: z.number().int().min(1).nullable().optional(),
    temperature: z.number().min(0).max(2).nullable().optional(),
    top_p: z.number().min(0).max(1).nullable().optional(),
    stop: z.union([z.string().max(256), z.array(z.string().max(256)).max(4)]).nullable().optional(),
    seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullable().optional(),
    n: z.literal(1).nullable().optional(),
    user: z.string().max(256).optional(),
    metadata: z.record(z.string().max(64), z.string().max(512)).optional(),
    conversation_id: z.string().max(64).optional(),
  })
  .strict();

export type ChatCompletionRequest = z.infer<typeof chatCompletionRequest>;

/** Validates a parsed body, turning the first problem into a 400 that names the field. */
export function parseChatRequest(body: unknown): ChatCompletionRequest {
  return parseBody(chatCompletionRequest, body);
}

/** Flattens content parts to text; the engines take plain strings. */
export function messageText(content: ChatCompletionRequest['messages'][number]['content']): string {
  return typeof content === 'string' ? content : content.map((part) => part.text).join('');
}

/**
 * An upper bound on the prompt's tokens without a tokenizer: a byte-fallback
 * tokenizer never emits more tokens than UTF-8 bytes, plus template tokens per
 * message. Reserving on it can never under-reserve.
 */
export function worstCaseInputTokens(messages: Array<{ role: string; content: string }>): number {
  return messages.reduce((sum, item) => sum + Buffer.byteLength(item.content, 'utf8') + 8, 8);
}
