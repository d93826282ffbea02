// A simulated vLLM engine for scheduler benchmarks: no model, no CPU burn,
// only timers. llm-d-inference-sim (the Go simulator) cannot be installed here
// (the Go proxy refuses it) and eight real cpu-engines cannot run on two cores,
// so this models what routing depends on:
// - a KV cache of `blocks` blocks of 16 tokens with block-level LRU prefix
//   caching (chained block hashes, like vLLM's automatic prefix caching);
// - tokens = whitespace-separated words of the prompt (a tokenization that is
//   NOT the scheduler's chars/4 estimate, so its prefix index stays approximate);
// - prefill serialised on one compute unit, taking `prefillMsPerToken` per
//   uncached prompt token; decode at `decodeMs` per token per sequence;
// - at most `maxBatch` running sequences; the rest wait (vllm:num_requests_waiting).
// Usage: node sim-engine.mjs <count> <basePort> [json options]
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';

const [count = '8', basePort = '18000', optionsJson = '{}'] = process.argv.slice(2);
const options = { blockSize: 16, blocks: 1200, prefillMsPerToken: 0.8, decodeMs: 30, maxBatch: 8, model: 'sim-model', ...JSON.parse(optionsJson) };

class SimEngine {
  constructor() {
    this.cache = new Map(); // block hash -> true, in LRU order
    this.running = 0;
    this.waiting = [];
    this.prefillBusyUntil = 0;
    this.queries = 0;
    this.hits = 0;
  }
  blocksOf(messages) {
    const words = messages.map((m) => `<${m.role}> ${m.content}`).join(' ').split(/\s+/).filter(Boolean);
    const hashes = [];
    let parent = '';
    for (let i = 0; i + options.blockSize <= words.length; i += options.blockSize) {
      parent = createHash('sha1').update(parent).update(words.slice(i, i + options.blockSize).join(' ')).digest('hex');
      hashes.push(parent);
    }
    return { hashes, tokens: words.length };
  }
  /** Returns cached tokens and records the prompt's blocks as most recent. */
  admitPrompt(hashes, tokens) {
    let matched = 0;
    while (matched < hashes.length && this.cache.has(hashes[matched])) matched++;
    for (let i = hashes.length - 1; i >= 0; i--) {
      this.cache.delete(hashes[i]);
      this.cache.set(hashes[i], true);
    }
    while (this.cache.size > options.blocks) this.cache.delete(this.cache.keys().next().value);
    this.queries += tokens;
    this.hits += matched * options.blockSize;
    return matched * options.blockSize;
  }
  metrics() {
    const m = options.model;
    return [
      `vllm:num_requests_running{model_name="${m}"} ${this.running}`,
      `vllm:num_requests_waiting{model_name="${m}"} ${this.waiting.length}`,
      `vllm:kv_cache_usage_perc{model_name="${m}"} ${Math.min(1, (this.running * 100) / options.blocks).toFixed(4)}`,
      `vllm:cache_config_info{block_size="${options.blockSize}",num_gpu_blocks="${options.blocks}",enable_prefix_caching="True"} 1`,
      `vllm:prefix_cache_queries_total{model_name="${m}"} ${this.queries}`,
      `vllm:prefix_cache_hits_total{model_name="${m}"} ${this.hits}`,
      '',
    ].join('\n');
  }
  start(job) {
    if (this.running >= options.maxBatch) return void this.waiting.push(job);
    this.running++;
    job.run();
  }
  finish() {
    this.running--;
    const next = this.waiting.shift();
    if (next) this.start(next);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function serve(engine, port) {
  const server = createServer(async (req, res) => {
    if (req.url === '/health') return void res.writeHead(200).end();
    if (req.url === '/v1/models') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [{ id: options.model, object: 'model', max_model_len: 32768 }] }));
    if (req.url === '/metrics') return void res.writeHead(200, { 'content-type': 'text/plain' }).end(engine.metrics());
    if (req.url !== '/v1/chat/completions') return void res.writeHead(404).end();
    let raw = '';
    for await (const chunk of req) raw += chunk;
    const body = JSON.parse(raw);
    const { hashes, tokens } = engine.blocksOf(body.messages);
    const maxTokens = body.max_tokens ?? 32;
    let closed = false;
    res.on('close', () => (closed = true));
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.flushHeaders();
    const send = (value) => !closed && res.write(`data: ${JSON.stringify(value)}\n\n`);
    engine.start({
      run: async () => {
        try {
          const cached = engine.admitPrompt(hashes, tokens);
          // Prefill runs on the engine's one compute unit, after the prefills queued before it.
          const now = Date.now();
          const start = Math.max(now, engine.prefillBusyUntil);
          engine.prefillBusyUntil = start + (tokens - cached) * options.prefillMsPerToken;
          await sleep(engine.prefillBusyUntil - now);
          for (let i = 0; i < maxTokens && !closed; i++) {
            if (i > 0) await sleep(options.decodeMs);
            send({ id: 'sim', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: ` w${i}` }, finish_reason: null }] });
          }
          send({ id: 'sim', object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: 'length' }] });
          send({ id: 'sim', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: tokens, completion_tokens: maxTokens, total_tokens: tokens + maxTokens, prompt_tokens_details: { cached_tokens: cached } } });
          if (!closed) res.end('data: [DONE]\n\n');
        } finally {
          engine.finish();
        }
      },
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
}

await Promise.all(Array.from({ length: Number(count) }, (_, i) => serve(new SimEngine(), Number(basePort) + i)));
process.stdout.write(`ready ${count}\n`);
