import type { Logger } from '@ai-platform/platform';
import type { Llama } from 'node-llama-cpp' with { 'resolution-mode': 'import' };

/**
 * llama.cpp on CPU only, from the prebuilt binary (never a build at run time),
 * with its log lines in the service's structured log: errors as errors, the
 * rest at debug. `quiet` raises the threshold to errors (the embedding graph
 * warns on every pooled batch).
 */
export async function loadLlama(threads: number, logger: Logger, quiet = false): Promise<Llama> {
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  return getLlama({
    gpu: false,
    build: 'never',
    progressLogs: false,
    maxThreads: threads,
    logLevel: quiet ? LlamaLogLevel.error : LlamaLogLevel.warn,
    logger: (level, message) => {
      const text = message.trim();
      if (!text) return;
      if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) logger.error({ llama: true }, text);
      else logger.debug({ llama: true, level }, text);
    },
  });
}
