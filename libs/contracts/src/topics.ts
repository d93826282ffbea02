/**
 * Every Kafka topic the platform produces or consumes, in one place. Names are
 * versioned: a breaking change to an event gets a new topic, never a new shape
 * on an old one.
 */
export const Topics = {
  usageEvents: 'usage.events.v1',
  usageEventsDeadLetter: 'usage.events.dlq.v1',
  billingAlerts: 'billing.alerts.v1',
} as const;

export type TopicName = (typeof Topics)[keyof typeof Topics];

/** CloudEvents `ce_type` of each event carried on the topics above. */
export const EventTypes = {
  usageRecorded: 'ai.platform.events.v1.UsageEvent',
  billingAlert: 'ai.platform.events.v1.BillingAlert',
} as const;
