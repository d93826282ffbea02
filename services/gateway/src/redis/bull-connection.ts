import { Redis } from '@ai-platform/platform';

/** BullMQ wants its own connections that retry forever (workers block on Redis). */
export function bullConnection(url: string, name: string): Redis {
  const redis = new Redis(url, { connectionName: name, maxRetriesPerRequest: null, enableReadyCheck: true, retryStrategy: (attempt) => Math.min(attempt * 200, 2_000) });
  redis.on('error', () => undefined);
  return redis;
}
