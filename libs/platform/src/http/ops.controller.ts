import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { HealthRegistry } from '../lifecycle/health';
import { metricsRegistry } from '../metrics/metrics';

/** Liveness, readiness and Prometheus metrics, served by every service. */
@Controller()
export class OpsController {
  constructor(@Inject(HealthRegistry) private readonly health: HealthRegistry) {}

  @Get('healthz')
  healthz() {
    return { status: 'ok' };
  }

  @Get('readyz')
  async readyz(@Res() reply: FastifyReply) {
    const result = await this.health.readiness();
    await reply.status(result.ready ? 200 : 503).send({ status: result.ready ? 'ready' : 'not_ready', checks: result.checks });
  }

  @Get('metrics')
  async metrics(@Res() reply: FastifyReply) {
    await reply.header('content-type', metricsRegistry.contentType).send(await metricsRegistry.metrics());
  }
}
