import { Inject, Injectable } from '@nestjs/common';
import { ApiError, apiErrorFromGrpc, CONFIG, isServiceError } from '@ai-platform/platform';
import type { GatewayConfig } from '../config';
import { UpstreamClients } from '../upstream/upstream.clients';

export interface CatalogModel {
  id: string;
  contextLength: number;
  kind: 'chat' | 'embedding';
}

/** The models callers may ask for, cached briefly so every request does not ask the pool. */
@Injectable()
export class ModelCatalog {
  private cached?: { at: number; models: CatalogModel[] };

  constructor(
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(UpstreamClients) private readonly upstream: UpstreamClients,
  ) {}

  async list(): Promise<CatalogModel[]> {
    if (this.cached && Date.now() - this.cached.at < this.config.MODELS_CACHE_MS) return this.cached.models;
    try {
      const { models } = await this.upstream.orchestrator.listModels({}, { timeoutMs: 5_000 });
      const list = models.map((model) => ({ id: model.id, contextLength: model.contextLength, kind: model.kind === 'embedding' ? ('embedding' as const) : ('chat' as const) }));
      // An empty pool is usually an engine restarting: ask again next time instead of caching it.
      this.cached = list.length > 0 ? { at: Date.now(), models: list } : undefined;
      return list;
    } catch (error) {
      throw isServiceError(error) ? apiErrorFromGrpc(error.code, error.details) : error;
    }
  }

  /** The chat model, or OpenAI's 404 for one that does not exist; an embedding model is a 400. */
  async require(id: string): Promise<CatalogModel> {
    const model = (await this.list()).find((candidate) => candidate.id === id);
    if (model?.kind === 'embedding') {
      throw ApiError.badRequest(`The model \`${id}\` is an embedding model: use /v1/embeddings.`, 'model', 'model_not_supported');
    }
    if (!model) {
      throw new ApiError(404, 'invalid_request_error', `The model \`${id}\` does not exist or you do not have access to it.`, 'model_not_found', 'model');
    }
    return model;
  }
}
