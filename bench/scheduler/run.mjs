// Scheduler benchmark: routing strategies on a shared-prefix workload, overload
// with priorities, a noisy tenant, and the cost of one routing decision.
//   source infra/local/node.sh && npx tsc -b services/inference-scheduler
//   set -a; source .local/infra.env; set +a
//   node bench/scheduler/run.mjs            # writes bench/results/scheduler.json and .md
import { writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decisionCost } from './decision-cost.mjs';
import { drive, poissonArrivals, root, startScheduler, startSims, summarize } from './harness.mjs';
import { renderMarkdown } from './report.mjs';

const ENGINES = 8;
const SIM = { blockSize: 16, blocks: 800, prefillMsPerToken: 0.8, decodeMs: 30, maxBatch: 8, model: 'sim-model' };
const GROUPS = 32;
const USERS_PER_GROUP = 4;
const SYSTEM_WORDS = 1200;
const OUTPUT_TOKENS = 32;
const RATES = (process.env.BENCH_RATES ?? '4,8,12,16').split(',').map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const TTFT_TARGET_MS = 2000;
// BENCH_PARTS=routing,overload,noisy,decision (default: all); BENCH_OUT: where the .json/.md go (default bench/results).
const PARTS = new Set((process.env.BENCH_PARTS ?? 'routing,overload,noisy,decision').split(','));
const OUT = process.env.BENCH_OUT ?? path.join(root, 'bench/results');
const NO_ADMISSION = { ENGINE_MAX_LOAD: '100000', ENGINE_MAX_WAITING: '100000', TTFT_TARGET_PREMIUM_MS: '600000', TTFT_TARGET_STANDARD_MS: '600000', TTFT_TARGET_BATCH_MS: '600000', ENGINE_REQUEST_TIMEOUT_MS: '120000' };

const vocabulary = 'policy account order refund shipping warranty invoice product support customer billing region tier limit quota model answer context document'.split(' ');
const systemPrompt = (group) => {
  let state = group * 7919 + 17;
  const words = [`You are the assistant of team ${group}.`];
  for (let i = 0; i < SYSTEM_WORDS; i++) words.push(vocabulary[(state = (state * 48271) % 2147483647) % vocabulary.length]);
  return words.join(' ');
};
const prompts = Array.from({ length: GROUPS }, (_, g) => systemPrompt(g));
// The scheduler estimates prompt tokens as characters / 4; the simulator counts words. Its prefill rate in
// the scheduler's units (what ENGINE_PREFILL_THROUGHPUT means) is words/s times estimated tokens per word.
const ESTIMATED_TOKENS_PER_WORD = prompts.reduce((sum, p) => sum + p.length / 4 / p.split(/\s+/).length, 0) / GROUPS;
const PREFILL_TOKENS_PER_S = String(Math.round((1000 / SIM.prefillMsPerToken) * ESTIMATED_TOKENS_PER_WORD));
const sharedPrefixRequest = (i, random, extra = {}) => {
  const group = Math.floor(random() * GROUPS);
  const user = Math.floor(random() * USERS_PER_GROUP);
  return {
    model: SIM.model,
    maxTokens: OUTPUT_TOKENS,
    tenantId: `tenant-${group % 8}`,
    priority: 'interactive_standard',
    messages: [{ role: 'system', content: prompts[group] }, { role: 'user', content: `User ${user} of team ${group} asks question ${i}: what is the status of order ${i * 13}?` }],
    ...extra,
  };
};

async function withStack(env, work, basePort) {
  const sims = await startSims(ENGINES, basePort, SIM);
  const scheduler = await startScheduler({ ENGINES: sims.urls.join(','), ...env }, basePort + 100);
  try {
    return await work(scheduler.client);
  } finally {
    await scheduler.stop();
    await sims.stop();
  }
}

const results = { machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, memory_gib: Math.round(os.totalmem() / 2 ** 30), load_average_at_start: os.loadavg().map((v) => +v.toFixed(2)), node: process.version }, workload: { engines: ENGINES, sim: SIM, groups: GROUPS, users_per_group: USERS_PER_GROUP, system_prompt_words: SYSTEM_WORDS, output_tokens: OUTPUT_TOKENS, seconds_per_rate: SECONDS, ttft_target_ms: TTFT_TARGET_MS, engine_prefill_tokens_per_s: Number(PREFILL_TOKENS_PER_S) }, routing: {}, overload: null, noisy_tenant: null, decision_cost: null };

// 1. Routing strategies at rising Poisson rates (fresh engines per strategy; caches warm up across rates alike).
let port = 18100;
for (const strategy of PARTS.has('routing') ? ['round-robin', 'least-load', 'prefix-load'] : []) {
  results.routing[strategy] = await withStack({ ROUTING_STRATEGY: strategy, ...NO_ADMISSION }, async (client) => {
    const rows = [];
    for (const rate of RATES) {
      const { results: calls, wallMs } = await drive(client, poissonArrivals(rate, SECONDS * 1000, 1000 + rate), (i, random) => sharedPrefixRequest(i, random));
      rows.push({ rate_rps: rate, ...summarize(calls, wallMs, TTFT_TARGET_MS) });
      console.error(strategy, JSON.stringify(rows.at(-1)));
    }
    return rows;
  }, (port += 200));
}

// 2. Overload: 4x what prefix + load sustains, 20% premium, 80% batch, admission control on.
if (PARTS.has('overload')) results.overload = await withStack(
  { ROUTING_STRATEGY: 'prefix-load', ENGINE_PREFILL_THROUGHPUT: PREFILL_TOKENS_PER_S, ENGINE_MAX_LOAD: process.env.BENCH_OVERLOAD_MAX_LOAD ?? '10', ENGINE_MAX_WAITING: '2', TTFT_TARGET_PREMIUM_MS: String(TTFT_TARGET_MS), TTFT_TARGET_STANDARD_MS: '5000', TTFT_TARGET_BATCH_MS: '30000' },
  async (client) => {
    const rate = Number(process.env.BENCH_OVERLOAD_RPS ?? 80);
    const { results: calls, wallMs } = await drive(client, poissonArrivals(rate, SECONDS * 1000, 7), (i, random) => sharedPrefixRequest(i, random, { priority: random() < 0.2 ? 'interactive_premium' : 'batch' }));
    const by = (priority) => calls.filter((c) => c.priority === priority);
    const codes = (list) => Object.fromEntries([...new Set(list.filter((c) => !c.ok).map((c) => c.code))].map((code) => [code, list.filter((c) => !c.ok && c.code === code).length]));
    return { rate_rps: rate, premium: { ...summarize(by('interactive_premium'), wallMs, TTFT_TARGET_MS), refused_by_code: codes(by('interactive_premium')) }, batch: { ...summarize(by('batch'), wallMs, 30_000), refused_by_code: codes(by('batch')) } };
  },
  (port += 200),
);
console.error('overload', JSON.stringify(results.overload));

// 3. Noisy tenant: five tenants at an equal share, then one of them at ten times it.
const noisyRun = async (noisyFactor, seed) =>
  withStack({ ROUTING_STRATEGY: 'prefix-load', ENGINE_PREFILL_THROUGHPUT: PREFILL_TOKENS_PER_S, ENGINE_MAX_LOAD: '8', ENGINE_MAX_WAITING: '1', TTFT_TARGET_STANDARD_MS: '10000' }, async (client) => {
    const share = Number(process.env.BENCH_TENANT_RPS ?? 3);
    const weights = [noisyFactor, 1, 1, 1, 1];
    const total = weights.reduce((a, b) => a + b, 0);
    const { results: calls, wallMs } = await drive(client, poissonArrivals(share * total, SECONDS * 1000, seed), (i, random) => {
      let pick = random() * total;
      let tenant = 0;
      while (pick > weights[tenant]) pick -= weights[tenant++];
      return sharedPrefixRequest(i, random, { tenantId: `tenant-${tenant}` });
    });
    const others = calls.filter((c) => c.tenantId !== 'tenant-0');
    return { tenant_rps: share, noisy_factor: noisyFactor, others: summarize(others, wallMs, TTFT_TARGET_MS), noisy: summarize(calls.filter((c) => c.tenantId === 'tenant-0'), wallMs, TTFT_TARGET_MS) };
  }, (port += 200));
if (PARTS.has('noisy')) {
const fairBaseline = await noisyRun(1, 11);
const noisy = await noisyRun(10, 11);
results.noisy_tenant = { baseline: fairBaseline, noisy, others_ttft_p99_increase_pct: Math.round(((noisy.others.ttft_p99_ms - fairBaseline.others.ttft_p99_ms) / fairBaseline.others.ttft_p99_ms) * 100) };
console.error('noisy', JSON.stringify(results.noisy_tenant));
}

// 4. One routing decision with 64 engines.
if (PARTS.has('decision')) results.decision_cost = decisionCost({ engines: 64, decisions: 20_000 });
results.machine.load_average_at_end = os.loadavg().map((v) => +v.toFixed(2));

mkdirSync(OUT, { recursive: true });
writeFileSync(path.join(OUT, 'scheduler.json'), JSON.stringify(results, null, 2) + '\n');
if (PARTS.size === 4) writeFileSync(path.join(OUT, 'scheduler.md'), renderMarkdown(results));
console.error(`written ${OUT}/scheduler.json`);
