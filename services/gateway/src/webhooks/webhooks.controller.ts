import { Controller, Get, HttpCode, Inject, Param, Post, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { ApiError, CONFIG } from '@ai-platform/platform';
import { authenticate } from '../auth/authenticate';
import type { GatewayConfig } from '../config';
import { parseBody, webhookRequest } from '../product/schemas';
import { urlProblem } from './outbound';
import { WebhookDispatcher } from './webhook.dispatcher';
import { WebhookStore } from './webhook.store';

@Controller('api/webhooks')
export class WebhooksController {
  constructor(
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(WebhookStore) private readonly store: WebhookStore,
    @Inject(WebhookDispatcher) private readonly dispatcher: WebhookDispatcher,
  ) {}

  /** Registers an endpoint; the answer carries its signing secret, shown this once. */
  @Post()
  @HttpCode(201)
  async create(@Req() request: FastifyRequest) {
    const principal = await authenticate(request);
    const body = parseBody(webhookRequest, request.body);
    const problem = urlProblem(body.url, { allowedPrivateHosts: this.config.WEBHOOK_ALLOWED_PRIVATE_HOSTS, allowHttp: this.config.WEBHOOK_ALLOW_HTTP });
    if (problem) throw ApiError.badRequest(`url ${problem}`, 'url', 'invalid_url');
    const created = await this.store.create(principal.tenantId, body.url, body.events ?? []);
    return { ...created, object: 'webhook' };
  }

  @Get()
  async list(@Req() request: FastifyRequest) {
    const principal = await authenticate(request);
    return { object: 'list', data: (await this.store.list(principal.tenantId)).map((row) => ({ ...row, object: 'webhook' })) };
  }

  @Get('dead-letters')
  async deadLetters(@Req() request: FastifyRequest) {
    const principal = await authenticate(request);
    return { object: 'list', data: await this.store.deadLetters(principal.tenantId) };
  }

  @Post('dead-letters/:id/replay')
  @HttpCode(202)
  async replay(@Req() request: FastifyRequest, @Param('id') id: string) {
    const principal = await authenticate(request);
    const letter = await this.store.takeForReplay(principal.tenantId, id);
    if (!letter) throw ApiError.notFound(`dead letter ${id.slice(0, 64)} not found`, 'dead_letter_not_found');
    await this.dispatcher.enqueue({ tenantId: principal.tenantId, webhookId: letter.webhookId, event: letter.payload as never });
    return { id, object: 'webhook.replay', status: 'queued' };
  }
}
