// Shared by bench/billing/concurrency.mjs and e2e/billing-concurrency.e2e.test.ts: many
// concurrent chat requests through the real gateway(s) at a tenant whose credit covers
// only a few worst cases; then what was admitted, what the credit allowed, and the ledger.
import { randomUUID } from 'node:crypto';

const PROMPT = 'Say hi.';

/** Sum of the tenant account's ledger entries (its balance), in micros. */
async function balance(pool, tenantId) {
  const { rows } = await pool.query(
    `SELECT coalesce(sum(e.amount_micros), 0)::text AS b FROM billing.ledger_entries e JOIN billing.accounts a ON a.id = e.account_id WHERE a.tenant_id = $1`,
    [tenantId],
  );
  return BigInt(rows[0].b);
}

async function held(pool, tenantId) {
  const { rows } = await pool.query(`SELECT count(*)::int AS n FROM billing.reservations WHERE tenant_id = $1 AND status = 'held'`, [tenantId]);
  return rows[0].n;
}

async function poll(probe, what, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function chat(gatewayUrl, apiKey, model, maxTokens) {
  return fetch(`${gatewayUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: PROMPT }], max_tokens: maxTokens, temperature: 0 }),
    signal: AbortSignal.timeout(300_000),
  }).then(async (response) => ({ status: response.status, body: await response.text() }), (error) => ({ status: 0, body: String(error) }));
}

/**
 * One scenario. `gateways`: gateway base URLs, requests spread round-robin. `rpc`: a
 * billing gRPC client (PostCredit, SetBudget). `pool`: Postgres, for the ledger.
 * The tenant's credit is set to `creditFor` worst cases of the request (its hold
 * amount, measured by one warm-up request) and its monthly budget to twice that.
 */
export async function runConcurrency({ gateways, apiKey, tenantId, rpc, pool, model, requests, creditFor, maxTokens = 4 }) {
  const warm = await chat(gateways[0], apiKey, model, maxTokens);
  if (warm.status !== 200) throw new Error(`warm-up request failed: ${warm.status} ${warm.body.slice(0, 300)}`);
  const { rows } = await pool.query(`SELECT amount_micros::text AS amount FROM billing.reservations WHERE tenant_id = $1 ORDER BY created_at LIMIT 1`, [tenantId]);
  const worstCase = BigInt(rows[0].amount);
  await poll(async () => (await held(pool, tenantId)) === 0 && (await balance(pool, tenantId)) > 0n, 'the warm-up to settle');
  const credit = BigInt(creditFor) * worstCase;
  await rpc.postCredit({ tenantId, kind: 'adjustment', amountMicros: credit - (await balance(pool, tenantId)), reference: `concurrency-${randomUUID()}`, description: `leave ${creditFor} worst cases of credit` });
  const budget = 2n * credit + 1_000_000n;
  await rpc.setBudget({ budget: { tenantId, scope: 'tenant', period: 'month', limitMicros: budget, hardLimitPercent: 100 } });
  const startBalance = await balance(pool, tenantId);
  if (startBalance !== credit) throw new Error(`balance ${startBalance} after the adjustment, expected ${credit}`);
  const usageBefore = await pool.query(`SELECT count(*)::int AS n FROM billing.usage_records WHERE tenant_id = $1`, [tenantId]);

  const started = Date.now();
  const results = await Promise.all(Array.from({ length: requests }, (_, i) => chat(gateways[i % gateways.length], apiKey, model, maxTokens)));
  const burstSeconds = (Date.now() - started) / 1000;
  const statuses = {};
  for (const r of results) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  const errors = [...new Set(results.filter((r) => r.status !== 200 && r.status !== 402).map((r) => `${r.status} ${r.body.slice(0, 200)}`))].slice(0, 3);
  const admitted = statuses[200] ?? 0;
  const refused = statuses[402] ?? 0;

  // Every hold settles (usage arrives over Kafka) or is released.
  await poll(async () => (await held(pool, tenantId)) === 0, 'every hold to settle or be released', 180_000);
  await poll(async () => {
    const { rows: n } = await pool.query(`SELECT count(*)::int AS n FROM billing.usage_records WHERE tenant_id = $1`, [tenantId]);
    return n[0].n - usageBefore.rows[0].n >= admitted;
  }, 'a usage record per admitted request', 120_000);
  const { rows: usage } = await pool.query(
    `SELECT count(*)::int AS n, coalesce(sum(cost_micros), 0)::text AS cost, coalesce(min(cost_micros), 0)::text AS min_cost, coalesce(max(cost_micros), 0)::text AS max_cost
       FROM (SELECT cost_micros FROM billing.usage_records WHERE tenant_id = $1 ORDER BY occurred_at OFFSET $2) u`,
    [tenantId, usageBefore.rows[0].n],
  );
  const finalBalance = await balance(pool, tenantId);
  const spent = startBalance - finalBalance;
  const { rows: spend } = await pool.query(`SELECT coalesce(sum(spent_micros), 0)::text AS spent FROM billing.budget_periods WHERE tenant_id = $1`, [tenantId]);
  const minCost = BigInt(usage[0].min_cost);
  // The open holds the account row carries (migration 010): zero once every hold is closed.
  const { rows: account } = await pool.query(`SELECT held_micros::text AS held FROM billing.accounts WHERE tenant_id = $1 AND kind = 'tenant'`, [tenantId]);
  return {
    gateways: gateways.length,
    requests,
    max_tokens: maxTokens,
    burst_seconds: +burstSeconds.toFixed(1),
    statuses,
    errors,
    admitted,
    refused,
    worst_case_micros: String(worstCase),
    credit_micros: String(credit),
    allowed_at_worst_case: Number(credit / worstCase),
    // Settled requests cost less than their hold and free credit during the burst:
    // the most the credit could ever pay for is credit ÷ the cheapest actual charge.
    allowed_at_actual_cost: minCost > 0n ? Number(credit / minCost) : null,
    actual_cost_micros: { min: usage[0].min_cost, max: usage[0].max_cost, records: usage[0].n },
    charged_micros: String(spent),
    final_balance_micros: String(finalBalance),
    budget_limit_micros: String(budget),
    budget_spend_micros: spend[0].spent,
    held_on_account_row_micros: account[0]?.held ?? null,
    overspend_micros: String(spent > credit ? spent - credit : 0n),
    zero_overspend: finalBalance >= 0n && spent <= credit && BigInt(spend[0].spent) <= budget,
  };
}
