export * from './topics';
export * as common from './gen/ai/platform/common/v1/common_pb';
export * as orchestrator from './orchestrator';
export * as inference from './gen/ai/platform/inference/v1/inference_pb';
export * as billing from './gen/ai/platform/billing/v1/billing_pb';
export * as events from './gen/ai/platform/events/v1/usage_pb';
export * as billingEvents from './gen/ai/platform/events/v1/billing_alert_pb';
