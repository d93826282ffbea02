import { bootstrapService } from '@ai-platform/platform';
import { AppModule } from './app.module';
import { configSchema } from './config';

void bootstrapService({
  name: 'gateway',
  configSchema,
  module: AppModule,
  bodyLimitBytes: Number(process.env.BODY_LIMIT_BYTES ?? 1024 * 1024),
});
