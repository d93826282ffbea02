import { Global, Module, type DynamicModule } from '@nestjs/common';
import type { Logger } from 'pino';
import { OpsController } from '../http/ops.controller';
import { DrainTracker } from '../lifecycle/drain';
import { HealthRegistry } from '../lifecycle/health';
import { CONFIG, LOGGER } from './tokens';

/** Global module: config, logger, health and drain tracking for the service's own modules. */
@Global()
@Module({})
export class PlatformModule {
  static forRoot(options: { config: unknown; logger: Logger; health: HealthRegistry; drain: DrainTracker }): DynamicModule {
    return {
      module: PlatformModule,
      controllers: [OpsController],
      providers: [
        { provide: CONFIG, useValue: options.config },
        { provide: LOGGER, useValue: options.logger },
        { provide: HealthRegistry, useValue: options.health },
        { provide: DrainTracker, useValue: options.drain },
      ],
      exports: [CONFIG, LOGGER, HealthRegistry, DrainTracker],
    };
  }
}
