import { Inject, Injectable } from '@nestjs/common';
import { toJsonString } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { create } from '@bufbuild/protobuf';
import { billingEvents, EventTypes, Topics } from '@ai-platform/contracts';
import type { Outbox, PoolClient } from '@ai-platform/platform';
import { OUTBOX } from '../infra/tokens';
import type { BudgetState } from './budget.service';

const KINDS = {
  threshold: billingEvents.BillingAlertKind.THRESHOLD,
  kill_switch: billingEvents.BillingAlertKind.KILL_SWITCH,
  kill_switch_lifted: billingEvents.BillingAlertKind.KILL_SWITCH_LIFTED,
} as const;

export type AlertKind = keyof typeof KINDS;

/**
 * Writes a budget alert in the caller's transaction, twice: to the outbox for
 * Kafka `billing.alerts.v1` (key = tenant id) and, when the tenant has an
 * alert webhook, to `webhook_deliveries` (sent signed by WebhookSender). The
 * alert id is derived from budget, period, kind and threshold, so it is the
 * same however often the decision is retried: consumers deduplicate by it.
 */
@Injectable()
export class AlertSender {
  constructor(@Inject(OUTBOX) private readonly outbox: Outbox) {}

  async enqueue(client: PoolClient, tenantId: string, budget: BudgetState, kind: AlertKind, percent: number, suffix = ''): Promise<string> {
    const alertId = `alert_${budget.id}_${budget.periodStart.toISOString().slice(0, 10)}_${kind}_${percent}${suffix}`;
    const alert = create(billingEvents.BillingAlertSchema, {
      alertId,
      tenantId,
      kind: KINDS[kind],
      scope: budget.scope,
      subject: budget.subject,
      period: budget.period,
      periodStart: timestampFromDate(budget.periodStart),
      thresholdPercent: percent,
      limitMicros: budget.limitMicros,
      spentMicros: budget.spentMicros,
      occurredAt: timestampFromDate(new Date()),
    });
    const json = toJsonString(billingEvents.BillingAlertSchema, alert);
    await this.outbox.enqueue(Topics.billingAlerts, { id: alertId, type: EventTypes.billingAlert, source: 'billing', key: tenantId, data: json }, client);
    await client.query(
      `INSERT INTO billing.webhook_deliveries (id, tenant_id, url, secret, body)
       SELECT $1, $2, alert_webhook_url, alert_webhook_secret, $3 FROM billing.accounts
        WHERE tenant_id = $2 AND alert_webhook_url IS NOT NULL AND alert_webhook_secret IS NOT NULL
       ON CONFLICT (id) DO NOTHING`,
      [alertId, tenantId, JSON.stringify({ type: `billing.alert.${kind}`, timestamp: new Date().toISOString(), data: JSON.parse(json) })],
    );
    return alertId;
  }
}
