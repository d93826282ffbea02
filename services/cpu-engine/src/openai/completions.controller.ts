import { Body, Controller, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { LlamaEngine } from '../engine/llama-engine';
import { CompletionRunner } from './completion-runner';
import { completionSchema, parseBody } from './schemas';

/** `POST /v1/completions`: raw text continuation, streamed or not. */
@Controller('v1')
export class CompletionsController {
  constructor(
    @Inject(LlamaEngine) private readonly engine: LlamaEngine,
    @Inject(CompletionRunner) private readonly runner: CompletionRunner,
  ) {}

  @Post('completions')
  @HttpCode(200)
  async create(@Body() body: unknown, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const input = parseBody(completionSchema, body);
    this.runner.assertModel(input.model);
    const prompt = this.engine.prepareCompletion(Array.isArray(input.prompt) ? input.prompt[0]! : input.prompt);
    const params = this.runner.samplingParams(input, input.max_tokens, prompt.tokens.length, 'prompt');
    await this.runner.run(reply, {
      shape: { kind: 'text', id: `cmpl-${request.requestId}`, created: Math.floor(Date.now() / 1000), model: input.model },
      prompt,
      params,
      stream: input.stream ?? false,
      includeUsage: input.stream_options?.include_usage ?? false,
      continuousUsage: (input.stream_options?.include_usage && input.stream_options.continuous_usage_stats) ?? false,
    });
  }
}
