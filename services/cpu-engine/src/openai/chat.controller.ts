import { Body, Controller, HttpCode, Inject, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { LlamaEngine } from '../engine/llama-engine';
import { CompletionRunner } from './completion-runner';
import { chatCompletionSchema, messageText, parseBody } from './schemas';

/** `POST /v1/chat/completions`: the model's own chat template, streamed or not. */
@Controller('v1')
export class ChatController {
  constructor(
    @Inject(LlamaEngine) private readonly engine: LlamaEngine,
    @Inject(CompletionRunner) private readonly runner: CompletionRunner,
  ) {}

  @Post('chat/completions')
  @HttpCode(200)
  async create(@Body() body: unknown, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const input = parseBody(chatCompletionSchema, body);
    this.runner.assertModel(input.model);
    const prompt = this.engine.prepareChat(
      input.messages.map((message) => ({
        role: message.role === 'developer' ? 'system' : message.role,
        content: messageText(message.content),
      })),
    );
    const params = this.runner.samplingParams(input, input.max_completion_tokens ?? input.max_tokens, prompt.tokens.length, 'messages');
    await this.runner.run(reply, {
      shape: { kind: 'chat', id: `chatcmpl-${request.requestId}`, created: Math.floor(Date.now() / 1000), model: input.model },
      prompt,
      params,
      stream: input.stream ?? false,
      includeUsage: input.stream_options?.include_usage ?? false,
      continuousUsage: (input.stream_options?.include_usage && input.stream_options.continuous_usage_stats) ?? false,
    });
  }
}
