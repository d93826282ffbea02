import { randomUUID } from 'node:crypto';
import { common, type inference } from '@ai-platform/contracts';
import { GrpcError, GrpcStatus, type RequestContext } from '@ai-platform/platform';
import type { ChatCompletionRequest } from '../engines/chat-stream';

export const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);
export const MAX_MESSAGES = 2_000;
export const MAX_STOP_SEQUENCES = 16;
export const MAX_STOP_LENGTH = 256;
const ID = /^[\w.:@/-]{1,256}$/;

/** A Generate request that passed validation, with who it is for. */
export interface ValidatedGenerate {
  model: string;
  messages: Array<{ role: string; content: string }>;
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  stop: string[];
  seed?: number;
  tenantId: string;
  userId: string;
  /** From `x-request-id`; generated when the caller sent none. */
  requestId: string;
  apiKeyId: string;
  reservationId: string;
  conversationId: string;
  priority: string;
}

/** Lane name of a request: the request field wins over the `x-priority` header; interactive standard by default. */
export function priorityName(priority: common.Priority, header: string | undefined): string {
  if (priority !== common.Priority.UNSPECIFIED) {
    const name = common.Priority[priority];
    if (name) return name.toLowerCase();
  }
  const fromHeader = header?.trim().toLowerCase().replace(/^priority_/, '');
  if (fromHeader && /^[a-z_]{1,64}$/.test(fromHeader)) return fromHeader;
  return 'interactive_standard';
}

function invalid(message: string): never {
  throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, message);
}

/** Checks a Generate call before it may reach an engine; throws INVALID_ARGUMENT saying what is wrong. */
export function validateGenerate(request: inference.GenerateRequest, context: RequestContext): ValidatedGenerate {
  const tenantId = context.tenantId;
  if (!tenantId) invalid('x-tenant-id metadata is required: every model call is metered to a tenant');
  if (!request.model) invalid('model is required');
  if (request.model.length > 256) invalid('model must be at most 256 characters');
  if (request.messages.length === 0) invalid('messages must contain at least one message');
  if (request.messages.length > MAX_MESSAGES) invalid(`messages may contain at most ${MAX_MESSAGES} messages`);
  request.messages.forEach((message, index) => {
    if (!ROLES.has(message.role)) invalid(`messages[${index}].role must be one of ${[...ROLES].join(', ')}; got ${JSON.stringify(message.role.slice(0, 50))}`);
  });
  if (!request.messages.some((message) => message.content.length > 0)) invalid('messages must not all be empty');

  const sampling = request.sampling;
  const maxTokens = sampling?.maxTokens || undefined;
  const temperature = sampling?.temperature;
  if (temperature !== undefined && !(Number.isFinite(temperature) && temperature >= 0 && temperature <= 2)) invalid('sampling.temperature must be between 0 and 2');
  const topP = sampling?.topP;
  if (topP !== undefined && !(Number.isFinite(topP) && topP > 0 && topP <= 1)) invalid('sampling.top_p must be greater than 0 and at most 1');
  const stop = sampling?.stop ?? [];
  if (stop.length > MAX_STOP_SEQUENCES) invalid(`sampling.stop may contain at most ${MAX_STOP_SEQUENCES} sequences`);
  stop.forEach((sequence, index) => {
    if (sequence.length === 0 || sequence.length > MAX_STOP_LENGTH) invalid(`sampling.stop[${index}] must be 1 to ${MAX_STOP_LENGTH} characters`);
  });
  let seed: number | undefined;
  if (sampling?.seed !== undefined) {
    if (sampling.seed > BigInt(Number.MAX_SAFE_INTEGER)) invalid(`sampling.seed must be at most ${Number.MAX_SAFE_INTEGER}`);
    seed = Number(sampling.seed);
  }
  for (const [name, value] of [['reservation_id', request.reservationId], ['conversation_id', request.conversationId], ['api_key_id', request.apiKeyId]] as const) {
    if (value && !ID.test(value)) invalid(`${name} must be 1 to 256 characters of letters, digits and ._:@/-`);
  }

  return {
    model: request.model,
    messages: request.messages.map((message) => ({ role: message.role, content: message.content })),
    ...(maxTokens !== undefined ? { maxTokens } : {}),
    ...(temperature !== undefined ? { temperature } : {}),
    ...(topP !== undefined ? { topP } : {}),
    stop: [...stop],
    ...(seed !== undefined ? { seed } : {}),
    tenantId,
    userId: context.userId ?? '',
    requestId: context.requestId ?? randomUUID(),
    apiKeyId: request.apiKeyId,
    reservationId: request.reservationId,
    conversationId: request.conversationId,
    priority: priorityName(request.priority, context.priority),
  };
}

/** The engine request for a validated call (vLLM's OpenAI-compatible chat completions). */
export function toEngineRequest(call: ValidatedGenerate, options: { continuousUsage: boolean }): ChatCompletionRequest {
  return {
    model: call.model,
    messages: call.messages,
    stream: true,
    // Continuous usage puts the running token counts in every chunk (vLLM), so
    // a call aborted before the final usage chunk is still metered exactly.
    stream_options: { include_usage: true, ...(options.continuousUsage ? { continuous_usage_stats: true } : {}) },
    ...(call.maxTokens !== undefined ? { max_tokens: call.maxTokens } : {}),
    ...(call.temperature !== undefined ? { temperature: call.temperature } : {}),
    ...(call.topP !== undefined ? { top_p: call.topP } : {}),
    ...(call.stop.length > 0 ? { stop: call.stop } : {}),
    ...(call.seed !== undefined ? { seed: call.seed } : {}),
  };
}
