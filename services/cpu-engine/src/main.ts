import { bootstrapService } from '@ai-platform/platform';
import { AppModule } from './app.module';
import { configSchema } from './config';

bootstrapService({ name: 'cpu-engine', configSchema, module: AppModule }).catch((error: unknown) => {
  process.stderr.write(`cpu-engine: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
