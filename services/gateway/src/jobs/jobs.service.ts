import { randomUUID } from 'node:crypto';
import { Inject, Injectable, type BeforeApplicationShutdown, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Job } from 'bullmq';
import { CONFIG, LOGGER, runWithContext, type Logger } from '@ai-platform/platform';
import type { Principal } from '../auth/principal';
import { enforceKillSwitch } from '../billing/kill-switch.guard';
import { TurnService } from '../chat/turn.service';
import type { GatewayConfig } from '../config';
import type { JobRequest } from '../product/schemas';
import { WorkQueue } from '../redis/work-queue';
import { WebhookDispatcher } from '../webhooks/webhook.dispatcher';

interface JobData {
  principal: Principal;
  request: JobRequest;
}

export type JobStatus = 'queued' | 'processing' | 'generating' | 'complete' | 'failed';

export interface JobView {
  id: string;
  object: 'job';
  status: JobStatus;
  progress: number;
  created_at: string;
  result?: unknown;
  error?: string;
}

interface Progress {
  status: 'processing' | 'generating';
  percent: number;
}

/**
 * Async jobs on BullMQ: state lives in Redis, so a queued or running job
 * survives a gateway restart (a job whose worker died is picked up again as
 * stalled). `chat.batch` runs its completions one by one through the same
 * turn path as the API (limits, billing hold, orchestrator).
 */
@Injectable()
export class JobsService implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown {
  private work?: WorkQueue<JobData>;

  constructor(
    @Inject(CONFIG) private readonly config: GatewayConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(TurnService) private readonly turns: TurnService,
    @Inject(WebhookDispatcher) private readonly webhooks: WebhookDispatcher,
  ) {}

  onModuleInit(): void {
    this.work = new WorkQueue<JobData>(
      'gateway-jobs',
      { redisUrl: this.config.REDIS_URL, prefix: this.config.QUEUE_PREFIX, concurrency: this.config.JOBS_CONCURRENCY, stalledIntervalMs: 10_000, logger: this.logger },
      (job) => this.run(job),
    );
    this.work.worker.on('failed', (job, error) => {
      if (job) void this.notify(job, 'job.failed', { error: error.message });
    });
  }

  /** Stops taking work and lets running work finish while the gRPC clients and the database are still open. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.work?.stopWorking();
  }

  async onApplicationShutdown(): Promise<void> {
    // Closing waits for running jobs; past the grace period they stall and resume on another replica or the next start.
    await this.work?.close();
  }

  private get queue() {
    return this.work!.queue;
  }

  async submit(principal: Principal, request: JobRequest): Promise<string> {
    // A tenant stopped by its budget gets its 402 now, not a job that fails later.
    await enforceKillSwitch(principal);
    const id = `job_${randomUUID().replaceAll('-', '')}`;
    await this.queue.add(request.type, { principal, request }, { jobId: id, attempts: 1, removeOnComplete: { age: 7 * 24 * 3600 }, removeOnFail: { age: 7 * 24 * 3600 } });
    return id;
  }

  /** The job if it belongs to the caller's tenant; another tenant's job does not exist. */
  async view(principal: Principal, id: string): Promise<JobView | undefined> {
    if (!/^job_[0-9a-f]{32}$/.test(id)) return undefined;
    const job = await this.queue.getJob(id);
    if (!job || job.data.principal.tenantId !== principal.tenantId) return undefined;
    const state = await job.getState();
    const progress = (typeof job.progress === 'object' ? job.progress : undefined) as Progress | undefined;
    const status: JobStatus = state === 'completed' ? 'complete' : state === 'failed' ? 'failed' : state === 'active' ? (progress?.status ?? 'processing') : 'queued';
    return {
      id, object: 'job', status, progress: status === 'complete' ? 100 : (progress?.percent ?? 0), created_at: new Date(job.timestamp).toISOString(),
      ...(status === 'complete' ? { result: job.returnvalue } : {}),
      ...(status === 'failed' ? { error: job.failedReason } : {}),
    };
  }

  private async run(job: Job<JobData>) {
    const { principal, request } = job.data;
    await job.updateProgress({ status: 'processing', percent: 0 } satisfies Progress);
    const results = [];
    for (const [index, item] of request.requests.entries()) {
      const requestId = `${job.id}-${index}`;
      const text = await runWithContext({ tenantId: principal.tenantId, userId: principal.userId, requestId }, async () => {
        const turn = await this.turns.open(principal, requestId, { model: request.model, messages: item.messages, maxTokens: item.max_tokens });
        let answer = '';
        let usage;
        for (let next = await turn.events.next(); !next.done; next = await turn.events.next()) {
          if (next.value.event.case === 'delta') {
            answer += next.value.event.value.text;
          } else if (next.value.event.case === 'finished') usage = next.value.event.value.usage;
        }
        return { index, conversation_id: turn.conversationId, content: answer, usage: { prompt_tokens: usage?.inputTokens ?? 0, completion_tokens: usage?.outputTokens ?? 0 } };
      });
      results.push(text);
      await job.updateProgress({ status: 'generating', percent: Math.floor(((index + 1) / request.requests.length) * 100) } satisfies Progress);
    }
    const result = { object: 'chat.batch.result', model: request.model, results };
    await this.notify(job, 'job.completed', result);
    return result;
  }

  private async notify(job: Job<JobData>, type: string, data: unknown): Promise<void> {
    try {
      await this.webhooks.emit(job.data.principal.tenantId, type, { job_id: job.id, ...(data as object) });
    } catch (error) {
      this.logger.error({ err: error, job_id: job.id }, 'could not queue job webhook');
    }
  }
}
