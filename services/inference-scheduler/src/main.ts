import { bootstrapService } from '@ai-platform/platform';
import { inferenceScheduler } from './service';

bootstrapService(inferenceScheduler).catch((error: unknown) => {
  process.stderr.write(`inference-scheduler failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
