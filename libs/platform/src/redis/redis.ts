import Redis from 'ioredis';

export { Redis };

/**
 * A Redis client that never lets a request hang on Redis: commands time out,
 * and while disconnected they fail fast instead of queueing.
 */
export function createRedis(url: string, options: { commandTimeoutMs?: number; name: string }): Redis {
  const redis = new Redis(url, {
    connectionName: options.name,
    commandTimeout: options.commandTimeoutMs ?? 500,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    lazyConnect: false,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  redis.on('error', () => undefined);
  return redis;
}
