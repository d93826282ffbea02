import { Inject, Injectable } from '@nestjs/common';
import type { orchestrator } from '@ai-platform/contracts';
import { ApiError, CONFIG, LOGGER, type Logger } from '@ai-platform/platform';
import { costMicros, PriceTable, worstCaseCostMicros } from '@ai-platform/pricing';
import type { Principal } from '../auth/principal';
import type { GatewayConfig } from '../config';
import { enforceKillSwitch } from '../billing/kill-switch.guard';
import { RateLimiter } from '../limits/rate-limiter';
import { ModelCatalog } from '../openai/model-catalog';
import { releaseHold, startTurn, takeHold, toPublicError } from '../openai/chat-turn';
import { worstCaseInputTokens } from '../openai/chat-request';
import { UpstreamClients } from '../upstream/upstream.clients';

export interface TurnRequest {
  model: string;
  messages: Array<{ role: string; content: string }>;
  maxTokens?: number | null;
  /** Which body field set maxTokens, for the error's `param`. */
  maxTokensParam?: string;
  temperature?: number | null;
  topP?: number | null;
  stop?: string[];
  seed?: number | null;
  conversationId?: string;
}

export interface OpenTurn {
  conversationId: string;
  /** Events after `started`; the usage of `finished` corrects the rate-limit counters. */
  events: AsyncIterator<orchestrator.ChatResponse>;
  /** x-ratelimit-* headers for the answer. */
  headers: Record<string, string>;
  abort: AbortController;
  maxTokens: number;
}

/**
 * Everything before the first token of a turn, shared by every endpoint that
 * generates (chat completions, /api/chat, jobs): kill switch, model check, output bound, rate limits (requests, tokens, cost),
 * billing's hold, and the orchestrator stream. Failing after the hold releases it.
 */
@Injectable()
export class TurnService {
  private readonly prices = new PriceTable();

  constructor(
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(UpstreamClients) private readonly upstream: UpstreamClients,
    @Inject(ModelCatalog) private readonly catalog: ModelCatalog,
    @Inject(RateLimiter) private readonly limiter: RateLimiter,
  ) {}

  /** `clientGone` aborts the turn when the caller disconnects, including while it waits for the first token. */
  async open(principal: Principal, requestId: string, input: TurnRequest, clientGone?: AbortSignal): Promise<OpenTurn> {
    // Billing's kill switch from Redis (bounded) before anything is counted or held; Reserve stays the authority.
    await enforceKillSwitch(principal);
    const model = await this.catalog.require(input.model);
    const maxTokens = input.maxTokens ?? Math.min(this.config.DEFAULT_MAX_TOKENS, model.contextLength || Infinity);
    const limit = Math.min(this.config.MAX_OUTPUT_TOKENS, model.contextLength || Infinity);
    if (maxTokens > limit) {
      throw ApiError.badRequest(`max_tokens is too large: ${maxTokens}. This model supports at most ${limit} completion tokens.`, input.maxTokensParam ?? 'max_tokens');
    }
    // Conservative estimate: one token per prompt byte (a byte-level tokenizer never needs more) plus max_tokens.
    const inputEstimate = worstCaseInputTokens(input.messages);
    const price = this.prices.get(input.model);
    const admission = await this.limiter.admit(principal, requestId, {
      tokens: inputEstimate + maxTokens,
      costMicros: price ? worstCaseCostMicros(price, inputEstimate, maxTokens) : 0,
    });
    let reservationId: string;
    try {
      reservationId = await takeHold(this.upstream, principal, requestId, input.model, inputEstimate, maxTokens);
    } catch (error) {
      await admission.settle({ tokens: 0, costMicros: 0 });
      throw error;
    }
    const abort = new AbortController();
    if (clientGone?.aborted) abort.abort(clientGone.reason);
    else clientGone?.addEventListener('abort', () => abort.abort(clientGone.reason), { once: true });
    let started;
    try {
      started = await startTurn(
        this.upstream.orchestrator.chat(
          {
            conversationId: input.conversationId ?? '',
            model: input.model,
            messages: input.messages,
            sampling: { maxTokens, temperature: input.temperature ?? undefined, topP: input.topP ?? undefined, stop: input.stop ?? [], seed: input.seed != null ? BigInt(input.seed) : undefined },
            reservationId,
            apiKeyId: principal.apiKeyId,
          },
          { signal: abort.signal },
        ),
        this.config.FIRST_EVENT_WAIT_MS,
      );
    } catch (error) {
      await releaseHold(this.upstream, reservationId, 'turn did not start', this.logger);
      await admission.settle({ tokens: 0, costMicros: 0 });
      throw toPublicError(error);
    }
    const events = started.events;
    const corrected: AsyncIterator<orchestrator.ChatResponse> = {
      next: async () => {
        const next = await events.next();
        if (!next.done && next.value.event.case === 'finished') {
          const usage = next.value.event.value.usage;
          const tokens = { inputTokens: usage?.inputTokens ?? 0, cachedInputTokens: Math.min(usage?.cachedInputTokens ?? 0, usage?.inputTokens ?? 0), outputTokens: usage?.outputTokens ?? 0 };
          void admission.settle({ tokens: tokens.inputTokens + tokens.outputTokens, costMicros: price ? costMicros(price, tokens) : 0 });
        }
        return next;
      },
      return: async (value) => events.return?.(value) ?? { done: true, value: undefined },
    };
    return { conversationId: started.conversationId, events: corrected, headers: admission.headers, abort, maxTokens };
  }
}
