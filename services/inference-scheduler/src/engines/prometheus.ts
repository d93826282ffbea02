/** One sample of the Prometheus text exposition format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/**
 * Parses the samples of a Prometheus text exposition (format 0.0.4; the
 * OpenMetrics subset engines emit parses too). Comments, HELP/TYPE lines and
 * malformed lines are skipped, never thrown: an engine's metrics are advisory,
 * and garbage must not stop routing. Only metrics whose name `wanted` accepts
 * are kept; input beyond `maxBytes` is ignored.
 */
export function parsePrometheusText(text: string, wanted: (name: string) => boolean = () => true, maxBytes = 4 * 1024 * 1024): Sample[] {
  const samples: Sample[] = [];
  const body = text.length > maxBytes ? text.slice(0, maxBytes) : text;
  for (const rawLine of body.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line.length === 0 || line.startsWith('#')) continue;
    const nameMatch = NAME.exec(line);
    if (!nameMatch || !wanted(nameMatch[0])) continue;
    const sample = parseLine(line, nameMatch[0]);
    if (sample) samples.push(sample);
  }
  return samples;
}

function parseLine(line: string, name: string): Sample | undefined {
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith('{')) {
    rest = rest.slice(1);
    for (;;) {
      rest = rest.trimStart();
      if (rest.startsWith('}')) {
        rest = rest.slice(1);
        break;
      }
      const labelMatch = LABEL_NAME.exec(rest);
      if (!labelMatch) return undefined;
      rest = rest.slice(labelMatch[0].length).trimStart();
      if (!rest.startsWith('=')) return undefined;
      rest = rest.slice(1).trimStart();
      if (!rest.startsWith('"')) return undefined;
      let value = '';
      let i = 1;
      for (; i < rest.length; i++) {
        const char = rest[i];
        if (char === '\\') {
          const next = rest[i + 1];
          value += next === 'n' ? '\n' : next ?? '';
          i++;
        } else if (char === '"') {
          break;
        } else {
          value += char;
        }
      }
      if (i >= rest.length) return undefined;
      labels[labelMatch[0]] = value;
      rest = rest.slice(i + 1).trimStart();
      if (rest.startsWith(',')) rest = rest.slice(1);
      else if (!rest.startsWith('}')) return undefined;
    }
  }
  if (!/^\s/.test(rest)) return undefined;
  const [valueText] = rest.trim().split(/\s+/);
  const value = parseValue(valueText);
  if (value === undefined) return undefined;
  return { name, labels, value };
}

function parseValue(text: string | undefined): number | undefined {
  if (!text) return undefined;
  if (text === '+Inf' || text === 'Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (text === 'NaN') return Number.NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) return undefined;
  return Number(text);
}

/** The load figures the scheduler reads from a vLLM engine. */
export interface EngineLoadMetrics {
  running: number;
  waiting: number;
  /** 0..1; undefined when the engine does not report it. */
  kvCacheUsage?: number;
  /** From `vllm:cache_config_info`: tokens per KV block and blocks in the cache. */
  blockSize?: number;
  cacheBlocks?: number;
  /** Prefix-cache counters (tokens queried and hit since the engine started). */
  prefixCacheQueries?: number;
  prefixCacheHits?: number;
}

const RUNNING = 'vllm:num_requests_running';
const WAITING = 'vllm:num_requests_waiting';
const KV_CACHE = ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'];
const CACHE_CONFIG = 'vllm:cache_config_info';
const PREFIX_QUERIES = ['vllm:prefix_cache_queries_total', 'vllm:prefix_cache_queries', 'vllm:gpu_prefix_cache_queries_total'];
const PREFIX_HITS = ['vllm:prefix_cache_hits_total', 'vllm:prefix_cache_hits', 'vllm:gpu_prefix_cache_hits_total'];
const WANTED = new Set([RUNNING, WAITING, CACHE_CONFIG, ...KV_CACHE, ...PREFIX_QUERIES, ...PREFIX_HITS]);

/** A positive integer label value (vLLM writes cache_config_info's fields as labels), else undefined. */
function positiveIntLabel(value: string | undefined, max: number): number | undefined {
  if (value === undefined || !/^\d{1,12}$/.test(value)) return undefined;
  const number = Number(value);
  return number > 0 && number <= max ? number : undefined;
}

/**
 * Reads vLLM's load gauges, summed over label sets (one per model or engine
 * core). Returns undefined when neither request gauge is present, so garbage
 * or an unrelated exposition reads as "unknown", not as "idle".
 */
export function readEngineLoad(text: string): EngineLoadMetrics | undefined {
  const samples = parsePrometheusText(text, (name) => WANTED.has(name));
  const sum = (...names: string[]) => {
    const values = samples.filter((sample) => names.includes(sample.name) && Number.isFinite(sample.value) && sample.value >= 0).map((sample) => sample.value);
    return values.length === 0 ? undefined : values.reduce((total, value) => total + value, 0);
  };
  const running = sum(RUNNING);
  const waiting = sum(WAITING);
  if (running === undefined && waiting === undefined) return undefined;
  const kvSamples = samples.filter((sample) => KV_CACHE.includes(sample.name) && Number.isFinite(sample.value) && sample.value >= 0);
  const kvCacheUsage = kvSamples.length === 0 ? undefined : Math.min(1, Math.max(...kvSamples.map((sample) => sample.value)));
  const config = samples.find((sample) => sample.name === CACHE_CONFIG)?.labels ?? {};
  const blockSize = positiveIntLabel(config.block_size, 4096);
  const cacheBlocks = positiveIntLabel(config.num_gpu_blocks, 1e9);
  const prefixCacheQueries = sum(...PREFIX_QUERIES);
  const prefixCacheHits = sum(...PREFIX_HITS);
  return {
    running: running ?? 0,
    waiting: waiting ?? 0,
    ...(kvCacheUsage !== undefined ? { kvCacheUsage } : {}),
    ...(blockSize !== undefined ? { blockSize } : {}),
    ...(cacheBlocks !== undefined ? { cacheBlocks } : {}),
    ...(prefixCacheQueries !== undefined && prefixCacheHits !== undefined ? { prefixCacheQueries, prefixCacheHits: Math.min(prefixCacheHits, prefixCacheQueries) } : {}),
  };
}
