import { describe, expect, it } from 'vitest';
import { MODEL, newTenant, publishUsage, reservationRow, startTestBilling, usageEvent } from './support/harness';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('a billing deployment that only answers Reserve', () => {
  it('with USAGE_CONSUMER_ENABLED=false it answers Reserve and is ready, and leaves usage to the deployment that consumes it', async () => {
    const apart = await startTestBilling({ USAGE_CONSUMER_ENABLED: 'false' });
    try {
      const response = await fetch(`${apart.running.httpUrl}/readyz`);
      expect(await response.json()).toEqual({ status: 'ready', checks: { postgres: 'ok' } });
      const tenantId = newTenant();
      const reservation = await apart.client.reserve({ tenantId, model: MODEL, inputTokens: 100, maxOutputTokens: 100 });
      expect(reservation.reservationId).toMatch(UUID_V7);
      await publishUsage(apart.publisher, usageEvent({ tenantId, reservationId: reservation.reservationId, inputTokens: 100, outputTokens: 50 }));

      const admin = apart.kafka.admin();
      await admin.connect();
      const { groups } = await admin.describeGroups([process.env.KAFKA_CONSUMER_GROUP!]).finally(() => admin.disconnect());
      expect(groups[0]!.members).toEqual([]); // nobody joined this process's consumer group
      expect((await reservationRow(apart.pool, reservation.reservationId))?.status).toBe('held');
    } finally {
      await apart.close();
      delete process.env.USAGE_CONSUMER_ENABLED;
    }
  });
});
