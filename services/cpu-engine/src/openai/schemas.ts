import { ApiError, z } from '@ai-platform/platform';

/**
 * Request bodies of vLLM's OpenAI-compatible API, validated strictly: wrong
 * types and out-of-range values are a 400 that names the parameter. Fields
 * this engine does not know are ignored (as vLLM does); fields it knows but
 * cannot honour (tools, n > 1, logprobs, ...) are refused rather than ignored.
 */

const textPart = z.object({ type: z.literal('text'), text: z.string() });

const messageContent = z.union([z.string(), z.array(textPart).min(1, 'must have at least one text part')], {
  error: 'must be a string or an array of {"type":"text","text":string} parts',
});

export const chatMessageSchema = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant'], { error: 'must be one of system, developer, user, assistant' }),
  content: messageContent,
  name: z.string().optional(),
});

const stop = z
  .union([z.string(), z.array(z.string()).max(16, 'at most 16 stop strings')], { error: 'must be a string or an array of strings' })
  .nullish()
  .transform((value) => (value == null ? [] : (Array.isArray(value) ? value : [value]).filter((item) => item.length > 0)));

const streamOptions = z
  .object({ include_usage: z.boolean().nullish(), continuous_usage_stats: z.boolean().nullish() })
  .nullish();

const positiveInt = z.number({ error: 'must be a number' }).int('must be an integer').min(1, 'must be at least 1');

/** Parameters shared by chat and text completions. */
const common = {
  model: z.string({ error: 'is required and must be a string' }).min(1, 'must not be empty'),
  max_tokens: positiveInt.nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(-1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullish(),
  stop,
  stream: z.boolean().nullish(),
  stream_options: streamOptions,
  n: z.literal(1, { error: 'only n=1 is supported' }).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  repetition_penalty: z.number().gt(0).max(2).nullish(),
  ignore_eos: z.boolean().nullish(),
  user: z.string().nullish(),
};

export const chatCompletionSchema = z.object({
  ...common,
  messages: z.array(chatMessageSchema, { error: 'must be an array of messages' }).min(1, 'must contain at least one message'),
  max_completion_tokens: positiveInt.nullish(),
  logprobs: z.literal(false, { error: 'logprobs are not supported by this engine' }).nullish(),
  top_logprobs: z.literal(0, { error: 'logprobs are not supported by this engine' }).nullish(),
  tools: z.array(z.unknown()).max(0, 'tools are not supported by this engine').nullish(),
  tool_choice: z.literal('none', { error: 'tools are not supported by this engine' }).nullish(),
  response_format: z.object({ type: z.literal('text', { error: 'only response_format {"type":"text"} is supported' }) }).nullish(),
});

export const completionSchema = z.object({
  ...common,
  prompt: z
    .union([z.string(), z.array(z.string())], { error: 'must be a string (or an array of one string)' })
    .refine((prompt) => typeof prompt === 'string' || prompt.length === 1, 'only one prompt per request is supported'),
  echo: z.literal(false, { error: 'echo is not supported by this engine' }).nullish(),
  suffix: z.null({ error: 'suffix is not supported by this engine' }).optional(),
  logprobs: z.null({ error: 'logprobs are not supported by this engine' }).optional(),
  best_of: z.literal(1, { error: 'only best_of=1 is supported' }).nullish(),
});

/** OpenAI's embeddings request; token-id inputs are refused (this engine embeds text). */
export const embeddingsSchema = z.object({
  model: z.string({ error: 'is required and must be a string' }).min(1, 'must not be empty'),
  input: z.union([z.string().min(1, 'must not be empty'), z.array(z.string().min(1, 'must not be empty'), { error: 'must be a string or an array of strings' }).min(1, 'must contain at least one string')], {
    error: 'must be a string or an array of strings',
  }),
  encoding_format: z.enum(['float', 'base64'], { error: 'must be float or base64' }).nullish(),
  dimensions: positiveInt.nullish(),
  user: z.string().nullish(),
});

export type ChatCompletionRequest = z.infer<typeof chatCompletionSchema>;
export type CompletionRequest = z.infer<typeof completionSchema>;

/** Parses a request body, turning the first problem into OpenAI's 400 with its `param`. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw ApiError.badRequest('request body must be a JSON object');
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const param = issue.path.map((part, index) => (typeof part === 'number' ? `[${part}]` : `${index === 0 ? '' : '.'}${String(part)}`)).join('') || null;
  const message = param ? `${param}: ${issue.message}` : issue.message;
  throw ApiError.badRequest(message, param);
}

/** A message's content as text (text parts joined). */
export function messageText(content: z.infer<typeof messageContent>): string {
  return typeof content === 'string' ? content : content.map((part) => part.text).join('');
}
