import { bootstrapService } from '@ai-platform/platform';
import { AppModule } from './app.module';
import { configSchema } from './config';
import { clientErrorHandler, installEdgeHooks } from './edge/hooks';

void bootstrapService({
  name: 'gateway',
  configSchema,
  module: AppModule,
  bodyLimitBytes: Number(process.env.BODY_LIMIT_BYTES ?? 1024 * 1024),
  fastifyOptions: {
    requestTimeout: Number(process.env.REQUEST_TIMEOUT_MS ?? 120_000),
    http: { maxHeaderSize: Number(process.env.MAX_HEADER_BYTES ?? 16 * 1024) },
    clientErrorHandler,
  },
  configureHttp: installEdgeHooks,
});
