import { describe, expect, it } from 'vitest';
import { parsePrometheusText, readEngineLoad } from '../src/engines/prometheus';

const vllm = `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="gemma-3-270m-it"} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="gemma-3-270m-it"} 3.0
vllm:kv_cache_usage_perc{engine="0",model_name="gemma-3-270m-it"} 0.25
vllm:request_success_total{engine="0",finished_reason="stop",model_name="gemma-3-270m-it"} 12.0
`;

describe('parsePrometheusText', () => {
  it('parses names with colons, labels and values', () => {
    const samples = parsePrometheusText(vllm);
    expect(samples).toHaveLength(4);
    expect(samples[0]).toEqual({ name: 'vllm:num_requests_running', labels: { engine: '0', model_name: 'gemma-3-270m-it' }, value: 2 });
  });

  it('handles escaped label values, timestamps, special values and CRLF', () => {
    const samples = parsePrometheusText('a{l="x\\"}, y\\\\z\\n"} 1 1700000000000\r\nb +Inf\r\nc NaN\r\nd{} -1.5e3\r\ne{x="1",} 4\n');
    expect(samples[0]).toEqual({ name: 'a', labels: { l: 'x"}, y\\z\n' }, value: 1 });
    expect(samples[1]!.value).toBe(Number.POSITIVE_INFINITY);
    expect(Number.isNaN(samples[2]!.value)).toBe(true);
    expect(samples[3]).toEqual({ name: 'd', labels: {}, value: -1500 });
    expect(samples[4]).toEqual({ name: 'e', labels: { x: '1' }, value: 4 });
  });

  it('skips malformed lines without throwing', () => {
    const garbage = ['{oops} 1', 'x{a="1" 2', 'x{a=1} 2', 'y notanumber', 'z{a="unterminated} 1', 'w', '\u0000\u0001\u0002', 'ok 3'].join('\n');
    expect(parsePrometheusText(garbage)).toEqual([{ name: 'ok', labels: {}, value: 3 }]);
  });
});

describe('readEngineLoad', () => {
  it('reads running, waiting and KV cache usage', () => {
    expect(readEngineLoad(vllm)).toEqual({ running: 2, waiting: 3, kvCacheUsage: 0.25 });
  });

  it('sums gauges over label sets', () => {
    const text = 'vllm:num_requests_running{engine="0"} 1\nvllm:num_requests_running{engine="1"} 2\nvllm:num_requests_waiting 0\n';
    expect(readEngineLoad(text)).toEqual({ running: 3, waiting: 0 });
  });

  it('reads the older gpu_cache_usage_perc name too', () => {
    expect(readEngineLoad('vllm:num_requests_running 0\nvllm:gpu_cache_usage_perc 0.5\n')?.kvCacheUsage).toBe(0.5);
  });

  it('returns undefined (unknown load) for garbage, HTML or an unrelated exposition', () => {
    expect(readEngineLoad('<html><body>502 Bad Gateway</body></html>')).toBeUndefined();
    expect(readEngineLoad('process_cpu_seconds_total 12\n')).toBeUndefined();
    expect(readEngineLoad('\u0000'.repeat(10_000))).toBeUndefined();
    expect(readEngineLoad('')).toBeUndefined();
  });

  it('ignores negative and non-finite gauge values', () => {
    expect(readEngineLoad('vllm:num_requests_running -4\nvllm:num_requests_waiting NaN\nvllm:num_requests_running 1\n')).toEqual({ running: 1, waiting: 0 });
  });
});
