import { Controller, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, DrainTracker, runWithContext } from '@ai-platform/platform';
import { authenticate } from '../auth/authenticate';
import { TurnService } from '../chat/turn.service';
import { toPublicError } from '../openai/chat-turn';
import { SseWriter } from '../openai/sse';
import { parseBody, uiChatRequest } from './schemas';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const FINISH = new Set(['stop', 'length', 'content-filter', 'tool-calls', 'error', 'other']);
export const DEFAULT_UI_MODEL = 'gemma-3-270m';

/**
 * `POST /api/chat` in the AI SDK UI message stream protocol (SSE, header
 * `x-vercel-ai-ui-message-stream: v1`), so `useChat` works against it. A chat
 * id that is a stored conversation's UUID continues it (only the newest user
 * message is sent; history is the server's); any other id runs statelessly on
 * the messages sent. The conversation id is in `start.messageMetadata` and the
 * `x-conversation-id` header; usage is in `finish.messageMetadata`.
 */
@Controller('api')
export class UiChatController {
  constructor(
    @Inject(TurnService) private readonly turns: TurnService,
    @Inject(DrainTracker) private readonly drain: DrainTracker,
  ) {}

  @Post('chat')
  @HttpCode(200)
  async chat(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const principal = await authenticate(request);
    const body = parseBody(uiChatRequest, request.body);
    const continuing = body.id !== undefined && UUID.test(body.id);
    const all = body.messages.map((message) => ({ role: message.role, content: message.parts.map((part) => (part.type === 'text' ? (part.text ?? '') : '')).join('') }));
    const messages = continuing ? all.slice(-1) : all;
    if (messages[messages.length - 1]?.role !== 'user') throw ApiError.badRequest('the last message must come from the user', 'messages');

    await runWithContext({ tenantId: principal.tenantId, userId: principal.userId, requestId: request.requestId }, async () => {
      const clientGone = new AbortController();
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) clientGone.abort();
      });
      const turn = await this.turns.open(principal, request.requestId, {
        model: body.model ?? DEFAULT_UI_MODEL, messages, conversationId: continuing ? body.id : undefined, maxTokens: body.max_tokens, temperature: body.temperature,
      }, clientGone.signal);
      reply.hijack();
      const sse = new SseWriter(reply.raw);
      const untrack = this.drain.track(() => turn.abort.abort(new Error('server is shutting down')));
      sse.open({ ...turn.headers, 'x-request-id': request.requestId, 'x-conversation-id': turn.conversationId, 'x-vercel-ai-ui-message-stream': 'v1' });
      const textId = `text_${request.requestId}`;
      let textOpen = false;
      try {
        await sse.data({ type: 'start', messageId: `msg_${request.requestId}`, messageMetadata: { conversationId: turn.conversationId } });
        await sse.data({ type: 'start-step' });
        for (let next = await turn.events.next(); !next.done; next = await turn.events.next()) {
          const event = next.value.event;
          if (event.case === 'delta') {
            if (!textOpen) await sse.data({ type: 'text-start', id: textId });
            textOpen = true;
            await sse.data({ type: 'text-delta', id: textId, delta: event.value.text });
          } else if (event.case === 'finished') {
            if (textOpen) await sse.data({ type: 'text-end', id: textId });
            textOpen = false;
            const usage = event.value.usage;
            const reason = FINISH.has(event.value.finishReason) ? event.value.finishReason : 'stop';
            await sse.data({ type: 'finish-step' });
            await sse.data({
              type: 'finish', finishReason: reason,
              messageMetadata: { conversationId: turn.conversationId, usage: { inputTokens: usage?.inputTokens ?? 0, outputTokens: usage?.outputTokens ?? 0, cachedInputTokens: usage?.cachedInputTokens ?? 0, totalTokens: (usage?.inputTokens ?? 0) + (usage?.outputTokens ?? 0) } },
            });
          }
        }
      } catch (error) {
        if (!sse.closed) await sse.data({ type: 'error', errorText: toPublicError(error).message });
      } finally {
        await sse.data('[DONE]');
        sse.end();
        untrack();
      }
    });
  }
}
