import { Controller, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { orchestrator } from '@ai-platform/contracts';
import { ApiError, CONFIG, DrainTracker, GrpcStatus, isServiceError, LOGGER, runWithContext, type Logger } from '@ai-platform/platform';
import { authenticate } from '../auth/authenticate';
import { IdentityStore } from '../auth/identity.store';
import type { Principal } from '../auth/principal';
import type { GatewayConfig } from '../config';
import { TurnService, type OpenTurn } from '../chat/turn.service';
import { messageText, parseChatRequest, type ChatCompletionRequest } from './chat-request';
import { toPublicError } from './chat-turn';
import { chunk, completion, usageOf } from './openai-format';
import { SseWriter } from './sse';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * OpenAI-compatible chat completions. The conversation is chosen by the
 * `x-conversation-id` header or the `conversation_id` body field (they must
 * agree when both are sent); without either a new conversation starts, and its
 * id is returned in the `x-conversation-id` response header.
 */
@Controller('v1')
export class ChatCompletionsController {
  constructor(
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(IdentityStore) private readonly identities: IdentityStore,
    @Inject(DrainTracker) private readonly drain: DrainTracker,
    @Inject(TurnService) private readonly turns: TurnService,
  ) {}

  @Post('chat/completions')
  @HttpCode(200)
  async create(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const principal = await authenticate(request, this.identities);
    const body = parseChatRequest(request.body);
    const conversationId = this.conversationId(request, body);
    const messages = body.messages.map((item) => ({ role: item.role === 'developer' ? 'system' : item.role, content: messageText(item.content) }));

    await runWithContext({ tenantId: principal.tenantId, userId: principal.userId, requestId: request.requestId }, async () => {
      // The client went away: cancel the whole chain down to the engine.
      const clientGone = new AbortController();
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) clientGone.abort();
      });
      const turn = await this.turns.open(principal, request.requestId, {
        model: body.model, messages, conversationId,
        maxTokens: body.max_completion_tokens ?? body.max_tokens, maxTokensParam: body.max_completion_tokens ? 'max_completion_tokens' : 'max_tokens',
        temperature: body.temperature, topP: body.top_p, stop: typeof body.stop === 'string' ? [body.stop] : (body.stop ?? []), seed: body.seed,
      }, clientGone.signal);
      const abort = turn.abort;
      const meta = { id: `chatcmpl-${request.requestId}`, created: Math.floor(Date.now() / 1000), model: body.model };
      const headers = { ...turn.headers, 'x-request-id': request.requestId, 'x-conversation-id': turn.conversationId };
      if (body.stream) await this.stream(reply, turn, meta, headers, Boolean(body.stream_options?.include_usage), abort);
      else await this.respond(reply, turn, meta, headers);
    });
  }

  private conversationId(request: FastifyRequest, body: ChatCompletionRequest): string | undefined {
    const header = request.headers['x-conversation-id'];
    const fromHeader = typeof header === 'string' && header.length > 0 ? header : undefined;
    if (fromHeader && body.conversation_id && fromHeader !== body.conversation_id) {
      throw ApiError.badRequest('x-conversation-id header and conversation_id field disagree', 'conversation_id');
    }
    const id = fromHeader ?? body.conversation_id;
    if (id !== undefined && !UUID.test(id)) throw ApiError.badRequest('conversation id must be a UUID', 'conversation_id');
    return id;
  }

  private async respond(reply: FastifyReply, turn: OpenTurn, meta: { id: string; created: number; model: string }, headers: Record<string, string>) {
    let text = '';
    let finished: orchestrator.Finished | undefined;
    try {
      for (let next = await turn.events.next(); !next.done; next = await turn.events.next()) {
        const event = next.value.event;
        if (event.case === 'delta') text += event.value.text;
        else if (event.case === 'finished') finished = event.value;
      }
    } catch (error) {
      throw toPublicError(error);
    }
    if (!finished) throw new ApiError(502, 'server_error', 'generation ended without a result', 'bad_upstream');
    await reply.headers(headers).send(completion(meta, text, finished));
  }

  private async stream(
    reply: FastifyReply, turn: OpenTurn, meta: { id: string; created: number; model: string },
    headers: Record<string, string>, includeUsage: boolean, abort: AbortController,
  ) {
    reply.hijack();
    const sse = new SseWriter(reply.raw);
    const untrack = this.drain.track(() => abort.abort(new Error('server is shutting down')));
    sse.open(headers);
    try {
      await sse.data(chunk(meta, { role: 'assistant', content: '' }, null));
      for (let next = await turn.events.next(); !next.done; next = await turn.events.next()) {
        const event = next.value.event;
        if (event.case === 'delta') await sse.data(chunk(meta, { content: event.value.text }, null));
        else if (event.case === 'finished') {
          await sse.data(chunk(meta, {}, event.value.finishReason || 'stop'));
          if (includeUsage) await sse.data({ ...chunk(meta, {}, null), choices: [], usage: usageOf(event.value.usage) });
        }
      }
    } catch (error) {
      if (!sse.closed) {
        const publicError = abort.signal.aborted && this.drain.isDraining
          ? ApiError.unavailable('server is shutting down; the answer was cut short', 1)
          : toPublicError(error);
        await sse.data(publicError.toBody());
      }
    } finally {
      await sse.data('[DONE]');
      sse.end();
      untrack();
    }
  }
}
