export type BudgetPeriod = 'day' | 'month';
export type BudgetScope = 'tenant' | 'user' | 'api_key';

/** UTC bounds of the budget period that contains `at`. */
export function periodBounds(period: BudgetPeriod, at: Date = new Date()): { start: Date; end: Date } {
  const y = at.getUTCFullYear();
  const m = at.getUTCMonth();
  if (period === 'day') {
    const start = new Date(Date.UTC(y, m, at.getUTCDate()));
    return { start, end: new Date(start.getTime() + 86_400_000) };
  }
  return { start: new Date(Date.UTC(y, m, 1)), end: new Date(Date.UTC(y, m + 1, 1)) };
}

/** Redis key of a kill switch; the gateway reads the same names (services/gateway/src/billing/kill-switch.ts). */
export function killSwitchKey(tenantId: string, scope: BudgetScope, subject: string): string {
  return scope === 'tenant' ? `billing:kill:${tenantId}` : `billing:kill:${tenantId}:${scope}:${subject}`;
}
