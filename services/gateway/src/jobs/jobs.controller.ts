import { Controller, Get, HttpCode, Inject, Param, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, CONFIG } from '@ai-platform/platform';
import type { GatewayConfig } from '../config';
import { authenticate } from '../auth/authenticate';
import { SseWriter } from '../openai/sse';
import { jobRequest, parseBody } from '../product/schemas';
import { JobsService } from './jobs.service';

const POLL_MS = 250;

@Controller('api/jobs')
export class JobsController {
  constructor(
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(CONFIG) private readonly config: GatewayConfig,
  ) {}

  @Post()
  @HttpCode(202)
  async create(@Req() request: FastifyRequest) {
    const principal = await authenticate(request);
    const body = parseBody(jobRequest, request.body);
    const index = body.requests.findIndex((item) => (item.max_tokens ?? 0) > this.config.MAX_OUTPUT_TOKENS);
    if (index >= 0) throw ApiError.badRequest(`max_tokens is too large; at most ${this.config.MAX_OUTPUT_TOKENS} completion tokens`, `requests.${index}.max_tokens`);
    return { job_id: await this.jobs.submit(principal, body), object: 'job', status: 'queued' };
  }

  @Get(':id')
  async get(@Req() request: FastifyRequest, @Param('id') id: string) {
    const view = await this.jobs.view(await authenticate(request), id);
    if (!view) throw ApiError.notFound(`job ${id.slice(0, 64)} not found`, 'job_not_found');
    return view;
  }

  /** SSE: a `status` event at every change of status or progress, ending at complete or failed. */
  @Get(':id/events')
  async events(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const principal = await authenticate(request);
    const id = (request.params as { id: string }).id;
    let view = await this.jobs.view(principal, id);
    if (!view) throw ApiError.notFound(`job ${id.slice(0, 64)} not found`, 'job_not_found');
    reply.hijack();
    const sse = new SseWriter(reply.raw);
    sse.open({ 'x-request-id': request.requestId });
    let last = '';
    while (view && !sse.closed) {
      const snapshot = JSON.stringify({ status: view.status, progress: view.progress });
      if (snapshot !== last) {
        last = snapshot;
        reply.raw.write(`event: status\n`);
        await sse.data(view);
      }
      if (view.status === 'complete' || view.status === 'failed') break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      view = await this.jobs.view(principal, id).catch(() => view);
    }
    sse.end();
  }
}
