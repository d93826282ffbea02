import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseConfigSchema, bootstrapService, type RunningService } from '../src';
import { HttpFixtureModule } from './fixtures/http-fixture.module';

let service: RunningService<unknown>;

beforeAll(async () => {
  Object.assign(process.env, { HTTP_PORT: '0', LOG_LEVEL: 'silent', SHUTDOWN_GRACE_MS: '5000' });
  service = await bootstrapService({ name: 'fixture', configSchema: baseConfigSchema.extend({}), module: HttpFixtureModule, bodyLimitBytes: 2048 });
});

afterAll(async () => {
  await service.shutdown('test end');
});

const url = (path: string) => `${service.httpUrl}${path}`;

describe('bootstrapService HTTP plumbing', () => {
  it('serves liveness, readiness and Prometheus metrics', async () => {
    expect((await fetch(url('/healthz'))).status).toBe(200);
    const ready = await fetch(url('/readyz'));
    expect(ready.status).toBe(200);
    const metrics = await (await fetch(url('/metrics'))).text();
    expect(metrics).toContain('http_server_request_duration_seconds');
    expect(metrics).toContain('process_cpu_user_seconds_total');
  });

  it('echoes a well-formed request id and generates one otherwise', async () => {
    expect((await fetch(url('/healthz'), { headers: { 'x-request-id': 'abc-123' } })).headers.get('x-request-id')).toBe('abc-123');
    const generated = (await fetch(url('/healthz'), { headers: { 'x-request-id': 'bad id\u00e9' } })).headers.get('x-request-id');
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each([
    ['malformed JSON', { method: 'POST', path: '/echo', body: '{"a":', type: 'application/json' }, 400],
    ['an oversized body', { method: 'POST', path: '/echo', body: JSON.stringify({ a: 'x'.repeat(4096) }), type: 'application/json' }, 413],
    ['an unsupported content type', { method: 'POST', path: '/echo', body: 'a=b', type: 'application/xml' }, 415],
    ['an unknown route', { method: 'GET', path: '/nope' }, 404],
  ])('answers %s with a 4xx in the OpenAI error shape', async (_name, request, status) => {
    const response = await fetch(url(request.path), {
      method: request.method,
      body: 'body' in request ? request.body : undefined,
      headers: 'type' in request ? { 'content-type': request.type as string } : {},
    });
    expect(response.status).toBe(status);
    const body = await response.json();
    expect(body).toEqual({ error: { message: expect.any(String), type: 'invalid_request_error', code: expect.toBeOneOf([expect.any(String), null]), param: null } });
  });

  it('renders ApiError with its status and headers, and hides internal errors', async () => {
    const limited = await fetch(url('/api-error'));
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('7');
    expect(await limited.json()).toEqual({ error: { message: 'slow down', type: 'rate_limit_error', code: 'rate_limit_exceeded', param: null } });
    const crash = await fetch(url('/crash'));
    expect(crash.status).toBe(500);
    const text = await crash.text();
    expect(text).not.toContain('hunter2');
    expect(JSON.parse(text).error.type).toBe('server_error');
  });
});

describe('graceful shutdown', () => {
  it('stops taking new work, lets the open stream finish, then closes', async () => {
    const response = await fetch(url('/stream'));
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain('data: 0');

    const stopping = service.shutdown('test');
    const readiness = await fetch(url('/readyz'));
    expect(readiness.status).toBe(503);
    const refused = await fetch(url('/echo'), { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(refused.status).toBe(503);
    expect((await refused.json()).error.type).toBe('service_unavailable');

    let rest = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += new TextDecoder().decode(chunk.value);
    expect(rest).toContain('data: 4');
    expect(rest).toContain('[DONE]');
    await stopping;
    await expect(fetch(url('/healthz'))).rejects.toThrow();
  });
});
