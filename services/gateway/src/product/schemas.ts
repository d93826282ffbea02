import { z } from 'zod';

/** A useChat UI message: only text parts are sent to the model; other parts are accepted and ignored. */
const uiPart = z.object({ type: z.string().min(1).max(64), text: z.string().max(1_000_000).optional() }).loose();

export const uiChatRequest = z
  .object({
    /** useChat's chat id; a conversation UUID continues that stored conversation. */
    id: z.string().min(1).max(128).optional(),
    messages: z.array(z.object({ id: z.string().max(128).optional(), role: z.enum(['system', 'user', 'assistant']), parts: z.array(uiPart).max(200), metadata: z.unknown().optional() }).strict()).min(1).max(1000),
    trigger: z.enum(['submit-message', 'regenerate-message']).optional(),
    messageId: z.string().max(128).optional(),
    model: z.string().min(1).max(256).optional(),
    max_tokens: z.number().int().min(1).optional(),
    temperature: z.number().min(0).max(2).optional(),
  })
  .strict();
export type UiChatRequest = z.infer<typeof uiChatRequest>;

export const renameConversationRequest = z.object({ title: z.string().trim().min(1).max(200) }).strict();

export const embeddingsRequest = z
  .object({
    model: z.string().min(1).max(256),
    input: z.union([z.string(), z.array(z.string()).min(1).max(2048), z.array(z.number().int()).min(1), z.array(z.array(z.number().int()))]),
    encoding_format: z.enum(['float', 'base64']).optional(),
    dimensions: z.number().int().min(1).optional(),
    user: z.string().max(256).optional(),
  })
  .strict();

export const usageQuery = z
  .object({
    from: z.iso.datetime({ offset: true }).optional(),
    to: z.iso.datetime({ offset: true }).optional(),
  })
  .strict();

export const jobRequest = z
  .object({
    type: z.literal('chat.batch'),
    model: z.string().min(1).max(256),
    /** Each item is one completion, run in order. */
    requests: z.array(z.object({ messages: z.array(z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string().max(100_000) }).strict()).min(1).max(100), max_tokens: z.number().int().min(1).optional() }).strict()).min(1).max(100),
    metadata: z.record(z.string().max(64), z.string().max(512)).optional(),
  })
  .strict();
export type JobRequest = z.infer<typeof jobRequest>;

export const webhookRequest = z
  .object({
    url: z.url({ protocol: /^https?$/ }).max(2048),
    // Omitted means every event; an empty list would read as "none" to some and "all" to others.
    events: z
      .array(z.enum(['job.completed', 'job.failed']))
      .min(1, 'list at least one event, or omit events to receive all of them')
      .max(10)
      .refine((events) => new Set(events).size === events.length, 'each event may be listed once')
      .optional(),
  })
  .strict();

export { parseBody } from '../edge/parse-body';
