import type { OnApplicationShutdown, OnModuleInit, Provider } from '@nestjs/common';
import type { Logger } from 'pino';
import { CONFIG, LOGGER } from '../bootstrap/tokens';
import { HealthRegistry } from '../lifecycle/health';
import { createPool, migrate, type Pool } from './postgres';

/**
 * A service's own Postgres schema: a pool, its migrations applied at start-up,
 * a readiness check, and the pool closed at shutdown.
 */
export class Database implements OnModuleInit, OnApplicationShutdown {
  readonly pool: Pool;

  constructor(
    connectionString: string,
    readonly schema: string,
    private readonly migrationsDir: string,
    private readonly logger: Logger,
    health: HealthRegistry,
  ) {
    this.pool = createPool(connectionString, { applicationName: schema });
    health.register('postgres', async () => {
      await this.pool.query('SELECT 1');
    });
  }

  async onModuleInit(): Promise<void> {
    await migrate(this.pool, this.schema, this.migrationsDir, this.logger);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.pool.end();
  }
}

/** Provides `Database` for `schema`, reading DATABASE_URL from the service config. */
export function databaseProvider(schema: string, migrationsDir: string): Provider {
  return {
    provide: Database,
    inject: [CONFIG, LOGGER, HealthRegistry],
    useFactory: (config: { DATABASE_URL: string }, logger: Logger, health: HealthRegistry) =>
      new Database(config.DATABASE_URL, schema, migrationsDir, logger, health),
  };
}
