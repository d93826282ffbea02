import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Module, type DynamicModule, type Type } from '@nestjs/common';
import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { ConfigError, parseConfig } from '../config/config';
import { GrpcServer } from '../grpc/server';
import type { AnyService, ServiceImplementation } from '../grpc/types';
import { ApiExceptionFilter } from '../http/exception-filter';
import { installRequestHooks } from '../http/request-hooks';
import { DrainTracker } from '../lifecycle/drain';
import { HealthRegistry } from '../lifecycle/health';
import { createLogger, NestPinoLogger, type Logger } from '../logging/logger';
import { startTelemetry, stopTelemetry } from '../telemetry/telemetry';
import { PlatformModule } from './platform.module';

type BaseShape = { LOG_LEVEL: string; HTTP_HOST: string; HTTP_PORT: number; SHUTDOWN_GRACE_MS: number; OTEL_EXPORTER_OTLP_ENDPOINT?: string; OTEL_TRACES_SAMPLER_RATIO: number };

export interface GrpcRegistration {
  service: AnyService;
  /** A provider class of the app module whose methods implement the service. */
  implementation: Type<unknown>;
}

export interface ServiceDefinition<S extends z.ZodType<BaseShape>> {
  name: string;
  configSchema: S;
  module: Type<unknown> | DynamicModule;
  grpc?: { port: (config: z.infer<S>) => number; services: GrpcRegistration[] };
  bodyLimitBytes?: number;
  /** Extra Fastify server options (e.g. requestTimeout, http.maxHeaderSize), merged over the defaults. */
  fastifyOptions?: Record<string, unknown>;
  /**
   * Runs after the app is created and before its routes are registered: the
   * place for the service's own Fastify hooks (they then cover every route).
   */
  configureHttp?: (fastify: FastifyInstance, app: NestFastifyApplication) => void | Promise<void>;
}

export interface RunningService<C> {
  app: NestFastifyApplication;
  config: C;
  logger: Logger;
  httpUrl: string;
  grpcPort?: number;
  shutdown(reason: string): Promise<void>;
}

/**
 * Starts one platform service: validated config, logs, tracing, the Nest app on
 * Fastify with health, readiness and metrics, an optional gRPC server, and a
 * shutdown that stops taking work, drains open streams, then closes resources.
 */
export async function bootstrapService<S extends z.ZodType<BaseShape>>(definition: ServiceDefinition<S>): Promise<RunningService<z.infer<S>>> {
  let config: z.infer<S>;
  try {
    config = parseConfig(definition.configSchema);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${definition.name}: ${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
  const logger = createLogger(definition.name, config.LOG_LEVEL);
  startTelemetry({ serviceName: definition.name, otlpEndpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT, samplerRatio: config.OTEL_TRACES_SAMPLER_RATIO });
  const health = new HealthRegistry();
  const drain = new DrainTracker();

  @Module({ imports: [PlatformModule.forRoot({ config, logger, health, drain }), definition.module] })
  class RootModule {}

  const adapter = new FastifyAdapter({ bodyLimit: definition.bodyLimitBytes ?? 1024 * 1024, routerOptions: { maxParamLength: 256 }, return503OnClosing: true, ...definition.fastifyOptions });
  const app = await NestFactory.create<NestFastifyApplication>(RootModule, adapter, { logger: new NestPinoLogger(logger), abortOnError: false });
  const fastify = app.getHttpAdapter().getInstance();
  installRequestHooks(fastify, drain, logger);
  await definition.configureHttp?.(fastify, app);
  app.useGlobalFilters(new ApiExceptionFilter(logger));

  let grpcServer: GrpcServer | undefined;
  let grpcPort: number | undefined;
  if (definition.grpc) {
    grpcServer = new GrpcServer(logger, drain);
    for (const registration of definition.grpc.services) {
      grpcServer.addService(registration.service, app.get(registration.implementation) as ServiceImplementation<AnyService>);
    }
  }

  await app.init();
  await app.listen(config.HTTP_PORT, config.HTTP_HOST);
  if (grpcServer && definition.grpc) grpcPort = await grpcServer.listen(config.HTTP_HOST, definition.grpc.port(config));
  const address = fastify.server.address();
  const httpUrl = typeof address === 'object' && address ? `http://${config.HTTP_HOST}:${address.port}` : `http://${config.HTTP_HOST}:${config.HTTP_PORT}`;
  logger.info({ http: httpUrl, grpc_port: grpcPort }, `${definition.name} listening`);

  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string) => {
    stopping ??= (async () => {
      logger.info({ reason, in_flight: drain.size }, 'shutting down: draining in-flight streams');
      health.markShuttingDown();
      const [drained] = await Promise.all([
        drain.drain(config.SHUTDOWN_GRACE_MS),
        grpcServer?.shutdown(config.SHUTDOWN_GRACE_MS + 1_000),
      ]);
      logger.info(drained, 'drained');
      await app.close();
      await stopTelemetry();
      logger.info('stopped');
    })();
    return stopping;
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      void shutdown(signal).then(
        () => process.exit(0),
        (error) => {
          logger.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
    });
  }
  return { app, config, logger, httpUrl, grpcPort, shutdown };
}
