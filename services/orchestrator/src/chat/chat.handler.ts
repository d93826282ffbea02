import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { common, inference, type orchestrator } from '@ai-platform/contracts';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { CONFIG, createGrpcClient, GrpcError, GrpcStatus, LOGGER, type CallInfo, type Logger, type ServiceClient } from '@ai-platform/platform';
import type { OrchestratorConfig } from '../config';
import { ConversationStore, type Conversation } from '../conversations/conversation.store';

type ChatEvent = MessageInitShape<typeof orchestrator.ChatResponseSchema>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ROLES = new Set(['system', 'user', 'assistant']);

/**
 * One conversation turn: resolve or start the conversation, prepend its stored
 * history, stream the model's answer from the scheduler, and store the turn.
 * Cancelling the call aborts the scheduler call, which aborts the engine.
 */
@Injectable()
export class ChatHandler implements OnApplicationShutdown {
  private readonly inference: ServiceClient<typeof inference.InferenceService>;

  constructor(
    @Inject(CONFIG) private readonly config: OrchestratorConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(ConversationStore) private readonly store: ConversationStore,
  ) {
    this.inference = createGrpcClient(inference.InferenceService, config.INFERENCE_URL, { defaultTimeoutMs: config.INFERENCE_TIMEOUT_MS });
  }

  onApplicationShutdown(): void {
    this.inference.close();
  }

  /** Embeddings go straight to the scheduler, which routes them to an engine serving the model and meters them. */
  async embed(request: orchestrator.EmbedRequest, call: CallInfo): Promise<MessageInitShape<typeof orchestrator.EmbedResponseSchema>> {
    if (!call.context.tenantId || !call.context.userId) throw new GrpcError(GrpcStatus.UNAUTHENTICATED, 'x-tenant-id and x-user-id metadata are required');
    const { embeddings, tokens } = await this.inference.embed(
      { model: request.model, inputs: request.inputs, reservationId: request.reservationId, apiKeyId: request.apiKeyId, priority: common.Priority.INTERACTIVE_STANDARD },
      { signal: call.signal },
    );
    return { embeddings: embeddings.map(({ values }) => ({ values })), tokens };
  }

  async listModels(): Promise<MessageInitShape<typeof orchestrator.ListModelsResponseSchema>> {
    const { models } = await this.inference.listModels({}, { timeoutMs: 5_000 });
    return { models: models.map((model) => ({ id: model.id, contextLength: model.contextLength, kind: model.kind || 'chat' })) };
  }

  async *chat(request: orchestrator.ChatRequest, call: CallInfo): AsyncGenerator<ChatEvent> {
    const { tenantId, userId, requestId } = call.context;
    if (!tenantId || !userId) throw new GrpcError(GrpcStatus.UNAUTHENTICATED, 'x-tenant-id and x-user-id metadata are required');
    if (!request.model) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'model is required');
    if (request.messages.length === 0) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'messages must not be empty');
    for (const message of request.messages) {
      if (!ROLES.has(message.role)) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `unsupported message role ${JSON.stringify(message.role)}`);
    }

    const { conversation, isNew } = await this.resolveConversation(tenantId, userId, request);
    // A conversation created for this turn has no history yet: no read.
    const history = isNew ? [] : await this.store.history(conversation, this.config.HISTORY_MAX_MESSAGES);
    yield { event: { case: 'started', value: { conversationId: conversation.id, model: request.model } } };

    let answer = '';
    let finished: { finishReason: string; usage?: common.TokenUsage } | undefined;
    try {
      const stream = this.inference.generate(
        {
          model: request.model,
          messages: [...history, ...request.messages.map(({ role, content }) => ({ role, content }))],
          sampling: request.sampling,
          priority: common.Priority.INTERACTIVE_STANDARD,
          reservationId: request.reservationId,
          conversationId: conversation.id,
          apiKeyId: request.apiKeyId,
        },
        { signal: call.signal },
      );
      for await (const response of stream) {
        if (response.event.case === 'delta') {
          answer += response.event.value.text;
          yield { event: { case: 'delta', value: { text: response.event.value.text } } };
        } else if (response.event.case === 'completion') {
          finished = { finishReason: response.event.value.finishReason, usage: response.event.value.usage };
        }
      }
    } finally {
      // The turn is stored even when the stream was cut short, so the history
      // shows what the user saw; an empty failed answer stores nothing.
      if (finished || answer.length > 0) {
        await this.store
          .appendTurn(conversation, {
            requestId,
            messages: request.messages.map(({ role, content }) => ({ role, content })),
            answer,
            complete: Boolean(finished),
            inputTokens: finished?.usage?.inputTokens,
            outputTokens: finished?.usage?.outputTokens,
          })
          .catch((error) => this.logger.error({ err: error, conversation_id: conversation.id }, 'failed to store turn'));
      }
    }
    if (!finished) throw new GrpcError(GrpcStatus.INTERNAL, 'inference stream ended without a completion');
    yield { event: { case: 'finished', value: { finishReason: finished.finishReason, usage: finished.usage } } };
  }

  private async resolveConversation(tenantId: string, userId: string, request: orchestrator.ChatRequest): Promise<{ conversation: Conversation; isNew: boolean }> {
    if (!request.conversationId) return { conversation: this.store.draft(tenantId, userId, request.model), isNew: true };
    if (!UUID.test(request.conversationId)) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'conversation id must be a UUID');
    const found = await this.store.find(tenantId, userId, request.conversationId);
    if (!found) throw new GrpcError(GrpcStatus.NOT_FOUND, `conversation ${request.conversationId} not found`);
    return { conversation: found, isNew: false };
  }
}
