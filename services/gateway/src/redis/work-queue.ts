import { Queue, Worker, type Job } from 'bullmq';
import type { Logger, Redis } from '@ai-platform/platform';
import { bullConnection } from './bull-connection';

export interface WorkQueueOptions {
  redisUrl: string;
  /** Redis key prefix: gateways sharing it share the work. */
  prefix: string;
  concurrency: number;
  stalledIntervalMs?: number;
  logger: Logger;
}

/**
 * A BullMQ queue with its worker on their own Redis connections, errors
 * logged, and one shutdown path: stop taking work, then close everything.
 */
export class WorkQueue<T> {
  readonly queue: Queue<T>;
  readonly worker: Worker<T>;
  private readonly connections: Redis[] = [];

  constructor(name: string, options: WorkQueueOptions, process: (job: Job<T>) => Promise<unknown>) {
    const connection = (role: string) => {
      const redis = bullConnection(options.redisUrl, `${name}-${role}`);
      this.connections.push(redis);
      return redis;
    };
    this.queue = new Queue<T>(name, { connection: connection('queue'), prefix: options.prefix });
    this.queue.on('error', (error) => options.logger.warn({ err: error, queue: name }, 'queue error'));
    this.worker = new Worker<T>(name, process, {
      connection: connection('worker'), prefix: options.prefix, concurrency: options.concurrency,
      ...(options.stalledIntervalMs ? { stalledInterval: options.stalledIntervalMs } : {}),
    });
    this.worker.on('error', (error) => options.logger.warn({ err: error, queue: name }, 'worker error'));
  }

  /** Stops taking work; running jobs finish. */
  async stopWorking(): Promise<void> {
    await this.worker.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.stopWorking();
    await this.queue.close().catch(() => undefined);
    for (const redis of this.connections) redis.disconnect();
  }
}
