import { Counter, Gauge, Histogram, metricsRegistry } from '@ai-platform/platform';

/**
 * vLLM v1's Prometheus metrics (names, labels, buckets), so that whatever
 * scrapes a vLLM pod (the inference scheduler, Grafana dashboards, the
 * Gateway API inference extension) reads this engine the same way.
 * Every series carries `model_name` and `engine` (vLLM's engine-core index; always "0" here).
 */

/** Live engine state, read at scrape time. */
export interface EngineStateSource {
  running(): number;
  waiting(): number;
  /** 0..1: tokens held by running requests / token capacity of all sequences. */
  kvCacheUsage(): number;
}

export type FinishedReason = 'stop' | 'length' | 'abort';

const LABELS = ['model_name', 'engine'] as const;
const registers = [metricsRegistry];

// vLLM's buckets (vllm/v1/metrics/loggers.py).
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];
const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];
const REQUEST_LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0];

/** vLLM's build_1_2_5_buckets(max_model_len). */
export function buckets125(max: number): number[] {
  const out: number[] = [];
  for (let exponent = 1; ; exponent *= 10) {
    for (const mantissa of [1, 2, 5]) {
      const value = mantissa * exponent;
      if (value > max) return out;
      out.push(value);
    }
  }
}

// The engine instance the state gauges read at scrape time (the latest one started in this process).
let source: EngineStateSource | undefined;
let current: { model_name: string; engine: string } | undefined;

/** Gets the metric from the process registry, creating it on first use (tests may start the engine twice). */
function metric<T>(name: string, create: () => T): T {
  return (metricsRegistry.getSingleMetric(name) as T | undefined) ?? create();
}

function stateGauge(name: string, help: string, read: (state: EngineStateSource) => number) {
  return metric(name, () =>
    new Gauge({
      name,
      help,
      labelNames: LABELS,
      registers,
      collect() {
        this.reset();
        const labels = current;
        if (source && labels) this.set(labels, read(source));
      },
    }),
  );
}

const histogram = (name: string, help: string, buckets: number[]) =>
  metric(name, () => new Histogram({ name, help, labelNames: LABELS, buckets, registers }));
const counter = (name: string, help: string, labelNames: readonly string[] = LABELS) =>
  metric(name, () => new Counter({ name, help, labelNames, registers }));

export class EngineMetrics {
  private readonly labels: { model_name: string; engine: string };
  readonly promptTokens;
  readonly generationTokens;
  readonly prefixQueries;
  readonly prefixHits;
  readonly ttft;
  readonly interToken;
  readonly timePerOutputToken;
  readonly requestTimePerOutputToken;
  readonly e2e;
  readonly queueTime;
  readonly inferenceTime;
  readonly prefillTime;
  readonly decodeTime;
  readonly requestPromptTokens;
  readonly requestGenerationTokens;
  readonly requestMaxTokens;
  private readonly success;

  constructor(modelName: string, state: EngineStateSource, cache: { blockSize: number; numBlocks: number; prefixCaching: boolean; maxModelLen: number }) {
    this.labels = { model_name: modelName, engine: '0' };
    current = this.labels;
    source = state;
    stateGauge('vllm:num_requests_running', 'Number of requests in model execution batches.', (s) => s.running());
    stateGauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', (s) => s.waiting());
    stateGauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', (s) => s.kvCacheUsage());
    stateGauge('vllm:gpu_cache_usage_perc', 'Deprecated alias of vllm:kv_cache_usage_perc (vLLM < 0.11 scrapers).', (s) => s.kvCacheUsage());
    counter('vllm:num_preemptions_total', 'Cumulative number of preemptions from the engine (never happens here).').labels(this.labels).inc(0);

    const info = metric('vllm:cache_config_info', () =>
      new Gauge({
        name: 'vllm:cache_config_info',
        help: 'Information of the LLMEngine CacheConfig',
        labelNames: ['model_name', 'engine', 'block_size', 'num_gpu_blocks', 'num_cpu_blocks', 'enable_prefix_caching', 'cache_dtype'],
        registers,
      }),
    );
    info.reset();
    info.set({ ...this.labels, block_size: String(cache.blockSize), num_gpu_blocks: String(cache.numBlocks), num_cpu_blocks: '0', enable_prefix_caching: String(cache.prefixCaching), cache_dtype: 'f16' }, 1);
    const lora = metric('vllm:lora_requests_info', () =>
      new Gauge({ name: 'vllm:lora_requests_info', help: 'Running stats on lora requests.', labelNames: ['model_name', 'max_lora', 'waiting_lora_adapters', 'running_lora_adapters'], registers }),
    );
    lora.reset();
    lora.set({ model_name: modelName, max_lora: '0', waiting_lora_adapters: '', running_lora_adapters: '' }, Date.now() / 1000);

    this.promptTokens = counter('vllm:prompt_tokens_total', 'Number of prefill tokens processed.').labels(this.labels);
    this.generationTokens = counter('vllm:generation_tokens_total', 'Number of generation tokens processed.').labels(this.labels);
    this.prefixQueries = counter('vllm:prefix_cache_queries_total', 'Prefix cache queries, in terms of number of queried tokens.').labels(this.labels);
    this.prefixHits = counter('vllm:prefix_cache_hits_total', 'Prefix cache hits, in terms of number of cached tokens.').labels(this.labels);
    this.success = counter('vllm:request_success_total', 'Count of successfully processed requests.', [...LABELS, 'finished_reason']);
    for (const reason of ['stop', 'length', 'abort'] as const) this.success.labels({ ...this.labels, finished_reason: reason }).inc(0);
    for (const child of [this.promptTokens, this.generationTokens, this.prefixQueries, this.prefixHits]) child.inc(0);

    this.ttft = histogram('vllm:time_to_first_token_seconds', 'Histogram of time to first token in seconds.', TTFT_BUCKETS).labels(this.labels);
    this.interToken = histogram('vllm:inter_token_latency_seconds', 'Histogram of inter-token latency in seconds.', ITL_BUCKETS).labels(this.labels);
    this.timePerOutputToken = histogram('vllm:time_per_output_token_seconds', 'Deprecated alias of vllm:inter_token_latency_seconds.', ITL_BUCKETS).labels(this.labels);
    this.requestTimePerOutputToken = histogram('vllm:request_time_per_output_token_seconds', 'Histogram of time_per_output_token_seconds per request.', ITL_BUCKETS).labels(this.labels);
    this.e2e = histogram('vllm:e2e_request_latency_seconds', 'Histogram of e2e request latency in seconds.', REQUEST_LATENCY_BUCKETS).labels(this.labels);
    this.queueTime = histogram('vllm:request_queue_time_seconds', 'Histogram of time spent in WAITING phase for request.', REQUEST_LATENCY_BUCKETS).labels(this.labels);
    this.inferenceTime = histogram('vllm:request_inference_time_seconds', 'Histogram of time spent in RUNNING phase for request.', REQUEST_LATENCY_BUCKETS).labels(this.labels);
    this.prefillTime = histogram('vllm:request_prefill_time_seconds', 'Histogram of time spent in PREFILL phase for request.', REQUEST_LATENCY_BUCKETS).labels(this.labels);
    this.decodeTime = histogram('vllm:request_decode_time_seconds', 'Histogram of time spent in DECODE phase for request.', REQUEST_LATENCY_BUCKETS).labels(this.labels);
    const tokenBuckets = buckets125(cache.maxModelLen);
    this.requestPromptTokens = histogram('vllm:request_prompt_tokens', 'Number of prefill tokens processed.', tokenBuckets).labels(this.labels);
    this.requestGenerationTokens = histogram('vllm:request_generation_tokens', 'Number of generation tokens processed.', tokenBuckets).labels(this.labels);
    this.requestMaxTokens = histogram('vllm:request_params_max_tokens', 'Histogram of the max_tokens request parameter.', tokenBuckets).labels(this.labels);
  }

  finished(reason: FinishedReason): void {
    this.success.labels({ ...this.labels, finished_reason: reason }).inc();
  }
}
