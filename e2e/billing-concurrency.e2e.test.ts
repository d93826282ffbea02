import { billing } from '@ai-platform/contracts';
import { createGrpcClient } from '@ai-platform/platform';
import { describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM module shared with bench/billing/concurrency.mjs
import { runConcurrency } from '../bench/billing/concurrency-lib.mjs';
import { MODEL } from './support/stack';
import { useStack } from './support/suite';

const suite = useStack();

describe('billing under concurrent requests through the gateway', () => {
  it('admits 60 concurrent chats only as far as credit for 6 worst cases goes: zero overspend, balance never below zero, within budget', async () => {
    await suite.stack.waitUntilServing(suite.tenant.apiKey);
    const rpc = createGrpcClient(billing.BillingService, `127.0.0.1:${suite.stack.ports.billing.grpc}`, { defaultTimeoutMs: 10_000 });
    try {
      const result = await runConcurrency({
        gateways: [suite.stack.gatewayUrl], apiKey: suite.tenant.apiKey, tenantId: suite.tenant.tenantId, rpc, pool: suite.db, model: MODEL,
        requests: 60, creditFor: 6, maxTokens: 4,
      });
      expect(result.statuses, JSON.stringify(result)).toEqual({ 200: result.admitted, 402: result.refused });
      expect(result.admitted + result.refused).toBe(60);
      expect(result.refused).toBeGreaterThan(0);
      // A refusal means holds + charges exceeded credit − one worst case, each admitted
      // request holding at most one worst case: so at least 6 were admitted...
      expect(result.admitted).toBeGreaterThanOrEqual(result.allowed_at_worst_case);
      // ...and never more than the credit pays for at the cheapest actual charge.
      expect(result.admitted).toBeLessThanOrEqual(result.allowed_at_actual_cost);
      expect(BigInt(result.final_balance_micros)).toBeGreaterThanOrEqual(0n);
      expect(BigInt(result.charged_micros)).toBeLessThanOrEqual(BigInt(result.credit_micros));
      expect(BigInt(result.budget_spend_micros)).toBeLessThanOrEqual(BigInt(result.budget_limit_micros));
      expect(result.held_on_account_row_micros).toBe('0'); // every hold closed, and the row's count agrees
      expect(result.overspend_micros).toBe('0');
      expect(result.zero_overspend).toBe(true);
    } finally {
      rpc.close();
    }
  });
});
