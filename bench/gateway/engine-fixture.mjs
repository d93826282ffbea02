// A zero-delay vLLM-compatible engine for gateway benchmarks (llm-d-inference-sim cannot be
// installed here: the Go module proxy refuses it). Answers /v1/chat/completions (streamed and
// not, with usage), /v1/models, /health, /metrics (vllm:* names) and /tokenize immediately.
import { createServer } from 'node:http';

const MODEL = process.env.MODEL_NAME ?? 'gemma-3-270m';
const port = Number(process.env.PORT ?? 0);
let running = 0;
let total = 0;

const json = (res, status, body) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
const usage = (prompt, completion) => ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });

function chat(req, res, body) {
  const id = `chatcmpl-${++total}`;
  const created = Math.floor(Date.now() / 1000);
  const prompt = JSON.stringify(body.messages ?? []).length >> 2;
  const words = ['Hello', ' from', ' the', ' fixture', '.'].slice(0, Math.max(1, Math.min(5, body.max_tokens ?? 5)));
  if (!body.stream) {
    return json(res, 200, { id, object: 'chat.completion', created, model: MODEL, choices: [{ index: 0, message: { role: 'assistant', content: words.join('') }, finish_reason: 'stop' }], usage: usage(prompt, words.length) });
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const frame = (data) => res.write(`data: ${JSON.stringify(data)}\n\n`);
  frame({ id, object: 'chat.completion.chunk', created, model: MODEL, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
  for (const word of words) frame({ id, object: 'chat.completion.chunk', created, model: MODEL, choices: [{ index: 0, delta: { content: word }, finish_reason: null }] });
  frame({ id, object: 'chat.completion.chunk', created, model: MODEL, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
  if (body.stream_options?.include_usage) frame({ id, object: 'chat.completion.chunk', created, model: MODEL, choices: [], usage: usage(prompt, words.length) });
  res.end('data: [DONE]\n\n');
}

const server = createServer((req, res) => {
  const path = req.url.split('?')[0];
  if (req.method === 'GET' && path === '/health') return res.writeHead(200).end();
  if (req.method === 'GET' && path === '/v1/models') return json(res, 200, { object: 'list', data: [{ id: MODEL, object: 'model', created: 0, owned_by: 'fixture', max_model_len: 32768 }] });
  if (req.method === 'GET' && path === '/metrics') {
    return res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(
      `# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="${MODEL}"} ${running}\n# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name="${MODEL}"} 0\n# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc{model_name="${MODEL}"} 0\n# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{model_name="${MODEL}"} 0\n# TYPE vllm:request_success_total counter\nvllm:request_success_total{model_name="${MODEL}",finished_reason="stop"} ${total}\n`);
  }
  if (req.method !== 'POST') return json(res, 404, { error: { message: 'not found', type: 'invalid_request_error', code: null, param: null } });
  let raw = '';
  req.on('data', (chunk) => (raw += chunk));
  req.on('end', () => {
    let body;
    try { body = JSON.parse(raw || '{}'); } catch { return json(res, 400, { error: { message: 'bad json', type: 'invalid_request_error', code: null, param: null } }); }
    if (path === '/tokenize') {
      const text = body.prompt ?? JSON.stringify(body.messages ?? '');
      const tokens = Array.from({ length: Math.max(1, text.length >> 2) }, (_, i) => i + 1);
      return json(res, 200, { count: tokens.length, max_model_len: 32768, tokens });
    }
    if (path === '/v1/chat/completions') {
      running++;
      res.on('close', () => running--);
      return chat(req, res, body);
    }
    json(res, 404, { error: { message: 'not found', type: 'invalid_request_error', code: null, param: null } });
  });
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`engine-fixture listening on ${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
