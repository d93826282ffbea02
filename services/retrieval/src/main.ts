import { baseConfigSchema, bootstrapService, z } from '@ai-platform/platform';
import { AppModule } from './app.module';

const configSchema = baseConfigSchema.extend({
  HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8084),
  DATABASE_URL: z.string().startsWith('postgres'),
});

void bootstrapService({ name: 'retrieval', configSchema, module: AppModule });
