import pino, { type Logger } from 'pino';
import type { LoggerService } from '@nestjs/common';
import { activeTraceIds } from '../telemetry/telemetry';
import { currentContext } from '../lifecycle/request-context';

export type { Logger };

/**
 * Structured JSON logs. Every line carries the active trace and span ids and the
 * request's tenant and request id, so a log line can be joined to its trace.
 */
export function createLogger(service: string, level: string, destination?: pino.DestinationStream): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin() {
      const { traceId, spanId } = activeTraceIds();
      const { tenantId, requestId } = currentContext();
      return {
        ...(traceId ? { trace_id: traceId, span_id: spanId } : {}),
        ...(tenantId ? { tenant_id: tenantId } : {}),
        ...(requestId ? { request_id: requestId } : {}),
      };
    },
    redact: { paths: ['apiKey', 'password', 'secret', 'authorization', 'req.headers.authorization', '*.apiKey', '*.password', '*.secret', '*.authorization'], censor: '[redacted]' },
  }, destination);
}

/** Routes NestJS's own log lines through pino. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly logger: Logger) {}
  log(message: unknown, context?: string) { this.logger.info({ context }, String(message)); }
  error(message: unknown, trace?: string, context?: string) { this.logger.error({ context, trace }, String(message)); }
  warn(message: unknown, context?: string) { this.logger.warn({ context }, String(message)); }
  debug(message: unknown, context?: string) { this.logger.debug({ context }, String(message)); }
  verbose(message: unknown, context?: string) { this.logger.trace({ context }, String(message)); }
  fatal(message: unknown, context?: string) { this.logger.fatal({ context }, String(message)); }
}
