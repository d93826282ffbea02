// Cost of one routing decision (prefix + load) with 64 engines: the real
// headroom checks and pipeline from the built scheduler, prompts of ~2,000
// tokens in 128 groups.
import { createRequire } from 'node:module';
import { root, percentile } from './harness.mjs';

const require = createRequire(import.meta.url);
const { Engine } = require(`${root}/services/inference-scheduler/dist/engines/engine.js`);
const { buildRoutingPipeline } = require(`${root}/services/inference-scheduler/dist/routing/routing-config.js`);
const { atRunningLimit, engineMeets, laneSlots, promptShape } = require(`${root}/services/inference-scheduler/dist/flow/headroom.js`);

export function decisionCost({ engines: count = 64, decisions = 20_000 } = {}) {
  const engines = Array.from({ length: count }, (_, i) => {
    const engine = new Engine(`10.0.0.${i}:8000`, `http://10.0.0.${i}:8000`);
    engine.healthy = true;
    engine.models = [{ id: 'm' }];
    engine.endScrape({ running: i % 9, waiting: i % 3, kvCacheUsage: 0.4, blockSize: 16, cacheBlocks: 4096 });
    engine.pendingPrefillTokens = (i % 5) * 500; // a prefill backlog, so every engine's estimate is computed
    return engine;
  });
  const router = buildRoutingPipeline({ strategy: 'prefix-load', prefixMaxImbalance: 4, saturation: { maxLoad: 64, maxWaiting: 64, maxKvUsage: 0.99, metricsStaleMs: 3_600_000, staleMaxInFlight: 1 } });
  const system = (g) => `System prompt of group ${g}: ` + 'you answer questions about the product catalogue, carefully and briefly. '.repeat(110);
  const request = (i) => ({ model: 'm', tenantId: 't', priority: 'interactive_standard', messages: [{ role: 'system', content: system(i % 128) }, { role: 'user', content: `question ${i} about item ${i * 7}` }] });
  const saturation = { maxLoad: 64, maxWaiting: 64, maxKvUsage: 0.99, metricsStaleMs: 3_600_000, staleMaxInFlight: 1 };
  const policy = { limits: saturation, batchShare: 0.5, prefillTokensPerSecond: 10_000, premiumTargetMs: 2_000 };
  // One decision as EngineSelector makes it: the prompt's blocks once, the engines with room for the lane
  // that can finish its prefill in time (prefix index lookup per engine), then the routing pipeline.
  const decide = (req) => {
    req.prompt = promptShape(req.messages);
    const now = Date.now();
    let usable = engines.filter((e) => laneSlots(e, 'interactive_standard', policy, now) > 0);
    const inTime = usable.filter((e) => !atRunningLimit(e) && engineMeets(e, 'interactive_standard', req.prompt, 4_500, policy));
    if (inTime.length > 0) usable = inTime;
    return router.pick(usable, req);
  };
  for (let i = 0; i < 2_000; i++) decide(request(i)); // warm indexes and the JIT
  // Wall time includes preemption by other processes on a shared machine; the
  // process's own CPU time per decision (getrusage, µs resolution) does not.
  const costs = [];
  const cpu = [];
  for (let i = 0; i < decisions; i++) {
    const req = request(i);
    const cpuStart = process.cpuUsage();
    const started = process.hrtime.bigint();
    decide(req);
    costs.push(Number(process.hrtime.bigint() - started) / 1e6);
    const used = process.cpuUsage(cpuStart);
    cpu.push((used.user + used.system) / 1000);
  }
  const promptChars = request(0).messages.reduce((n, m) => n + m.content.length, 0);
  return { engines: count, decisions, prompt_chars: promptChars, p50_ms: +percentile(costs, 50).toFixed(4), p99_ms: +percentile(costs, 99).toFixed(4), max_ms: +Math.max(...costs).toFixed(4), cpu_p50_ms: +percentile(cpu, 50).toFixed(4), cpu_p99_ms: +percentile(cpu, 99).toFixed(4) };
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(JSON.stringify(decisionCost(), null, 2));
