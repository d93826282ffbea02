import { Controller, Get, Inject, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { authenticate } from '../auth/authenticate';
import { IdentityStore } from '../auth/identity.store';
import { ModelCatalog } from './model-catalog';

@Controller('v1')
export class ModelsController {
  constructor(
    @Inject(IdentityStore) private readonly identities: IdentityStore,
    @Inject(ModelCatalog) private readonly catalog: ModelCatalog,
  ) {}

  @Get('models')
  async list(@Req() request: FastifyRequest) {
    await authenticate(request, this.identities);
    const models = await this.catalog.list();
    return {
      object: 'list',
      data: models.map((model) => ({ id: model.id, object: 'model', created: 0, owned_by: 'ai-platform', context_length: model.contextLength })),
    };
  }
}
