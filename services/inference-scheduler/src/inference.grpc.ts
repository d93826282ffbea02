import type { MessageInitShape } from '@bufbuild/protobuf';
import { Inject, Injectable } from '@nestjs/common';
import type { inference } from '@ai-platform/contracts';
import type { CallInfo, ServiceImplementation } from '@ai-platform/platform';
import { EnginePool } from './engines/engine-pool';
import { EmbeddingService } from './generation/embedding.service';
import { GenerationService } from './generation/generation.service';

type Implementation = ServiceImplementation<typeof inference.InferenceService>;

/** `ai.platform.inference.v1.InferenceService` over gRPC. */
@Injectable()
export class InferenceGrpcHandler implements Implementation {
  constructor(
    @Inject(GenerationService) private readonly generation: GenerationService,
    @Inject(EnginePool) private readonly pool: EnginePool,
    @Inject(EmbeddingService) private readonly embeddings: EmbeddingService,
  ) {}

  embed(request: inference.EmbedRequest, call: CallInfo): Promise<MessageInitShape<typeof inference.EmbedResponseSchema>> {
    return this.embeddings.embed(request, call);
  }

  generate(request: inference.GenerateRequest, call: CallInfo): AsyncIterable<MessageInitShape<typeof inference.GenerateResponseSchema>> {
    return this.generation.generate(request, call);
  }

  async listModels(_request: inference.ListModelsRequest, _call: CallInfo): Promise<MessageInitShape<typeof inference.ListModelsResponseSchema>> {
    return {
      models: this.pool.availableModels().map((model) => ({ id: model.id, contextLength: model.contextLength, readyEngines: model.readyEngines, kind: model.kind })),
    };
  }
}
