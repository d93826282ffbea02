import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { orchestrator } from '@ai-platform/contracts';
import {
  activeTraceIds, createGrpcClient, DrainTracker, finishedSpans, GrpcError, GrpcServer, GrpcStatus, isServiceError,
  runWithContext, startTelemetry, withSpan, type CallInfo, type ServiceClient,
} from '../src';

const logger = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Two hops: `front` answers Chat by calling `back`'s ListModels, which reports what it received. */
describe('gRPC server and client', () => {
  const drain = new DrainTracker();
  const front = new GrpcServer(logger, drain);
  const back = new GrpcServer(logger, new DrainTracker());
  let backClient: ServiceClient<typeof orchestrator.ChatService>;
  let client: ServiceClient<typeof orchestrator.ChatService>;
  let lastAbortReason: unknown;
  let streamAborted: Promise<void> = Promise.resolve();
  const finishedCallSignals: AbortSignal[] = [];

  beforeAll(async () => {
    startTelemetry({ serviceName: 'grpc-test', inMemory: true });
    back.addService(orchestrator.ChatService, {
      async *chat(request: orchestrator.ChatRequest) {
        if (request.model === 'shed') throw new GrpcError(GrpcStatus.RESOURCE_EXHAUSTED, 'the queue is full', { 'retry-after': '7' });
        if (request.model === 'no-engine') throw new GrpcError(GrpcStatus.UNAVAILABLE, 'no healthy engine');
        if (request.model === 'refused') throw new GrpcError(GrpcStatus.UNAUTHENTICATED, 'this service may not call back');
      },
      async embed() {
        return {};
      },
      async listModels(_request: unknown, call: CallInfo) {
        const { traceId } = activeTraceIds();
        return { models: [{ id: JSON.stringify({ ...call.context, traceId }) }] };
      },
    });
    const backPort = await back.listen('127.0.0.1', 0);
    backClient = createGrpcClient(orchestrator.ChatService, `127.0.0.1:${backPort}`, { defaultTimeoutMs: 5_000 });

    front.addService(orchestrator.ChatService, {
      async *chat(request: orchestrator.ChatRequest, call: CallInfo) {
        if (request.model === 'missing') throw new GrpcError(GrpcStatus.NOT_FOUND, 'no such model');
        if (request.model === 'crash') throw new Error('secret internal detail');
        // What pg throws for a U+0000 in a text parameter.
        if (request.model === 'nul-text') throw Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021', severity: 'ERROR' });
        if (request.model.startsWith('surrogate')) throw new GrpcError(GrpcStatus.NOT_FOUND, `conversation ${request.model} not found`);
        if (request.model === 'complete') {
          finishedCallSignals.push(call.signal);
          yield { event: { case: 'delta', value: { text: 'done' } } };
          return;
        }
        if (request.model.startsWith('downstream-')) {
          for await (const _ of backClient.chat({ model: request.model.slice('downstream-'.length) })) void _;
          return;
        }
        if (request.model === 'echo-downstream') {
          const { models } = await backClient.listModels({});
          yield { event: { case: 'delta', value: { text: models[0]!.id } } };
          return;
        }
        // 'wait': stream until cancelled, the deadline passes or the server drains.
        yield { event: { case: 'delta', value: { text: 'first' } } };
        streamAborted = new Promise((resolve) => call.signal.addEventListener('abort', () => resolve(), { once: true }));
        await streamAborted;
        lastAbortReason = call.signal.reason;
      },
      async embed() {
        return {};
      },
      async listModels(_request: unknown, call: CallInfo) {
        finishedCallSignals.push(call.signal);
        return { models: [] };
      },
    });
    const port = await front.listen('127.0.0.1', 0);
    client = createGrpcClient(orchestrator.ChatService, `127.0.0.1:${port}`, { defaultTimeoutMs: 5_000 });
  });

  afterAll(async () => {
    client.close();
    backClient.close();
    await front.shutdown(1_000);
    await back.shutdown(1_000);
  });

  it('propagates tenant, user, request id and trace across two hops', async () => {
    const texts: string[] = [];
    const traceId = await withSpan('test-root', {}, async () => {
      await runWithContext({ tenantId: 'tenant-a', userId: 'user-a', requestId: 'req-1', priority: 'batch' }, async () => {
        for await (const message of client.chat({ model: 'echo-downstream' })) {
          if (message.event.case === 'delta') texts.push(message.event.value.text);
        }
      });
      return activeTraceIds().traceId;
    });
    const seen = JSON.parse(texts[0]!);
    expect(seen).toMatchObject({ tenantId: 'tenant-a', userId: 'user-a', requestId: 'req-1', priority: 'batch', traceId });
    expect(seen.deadline).toBeGreaterThan(Date.now());
    // One trace: the root, the front server span and the back server span.
    const names = finishedSpans().filter((span) => span.spanContext().traceId === traceId).map((span) => span.name);
    expect(names).toEqual(expect.arrayContaining(['test-root', 'ai.platform.orchestrator.v1.ChatService/Chat', 'ai.platform.orchestrator.v1.ChatService/ListModels']));
  });

  it('maps handler failures to status codes without leaking internals', async () => {
    const codeOf = async (model: string) => {
      try {
        for await (const _ of client.chat({ model })) void _;
      } catch (error) {
        return isServiceError(error) ? { code: error.code, details: error.details } : undefined;
      }
    };
    expect(await codeOf('missing')).toEqual({ code: GrpcStatus.NOT_FOUND, details: 'no such model' });
    expect(await codeOf('crash')).toEqual({ code: GrpcStatus.INTERNAL, details: 'internal error' });
    expect(await codeOf('nul-text')).toMatchObject({ code: GrpcStatus.INVALID_ARGUMENT });
    // A lone surrogate in the message once crashed the server inside grpc-js.
    expect(await codeOf('surrogate\uD800')).toEqual({ code: GrpcStatus.NOT_FOUND, details: 'conversation surrogate\uFFFD not found' });
    expect(await codeOf('missing')).toMatchObject({ code: GrpcStatus.NOT_FOUND });
  });

  it('relays a downstream failure the caller can act on, with its retry hint, and hides the others', async () => {
    const failure = async (model: string) => {
      try {
        for await (const _ of client.chat({ model })) void _;
      } catch (error) {
        if (isServiceError(error)) return { code: error.code, details: error.details, retryAfter: (error as unknown as { metadata: { get(key: string): unknown[] } }).metadata.get('retry-after') };
      }
    };
    expect(await failure('downstream-shed')).toEqual({ code: GrpcStatus.RESOURCE_EXHAUSTED, details: 'the queue is full', retryAfter: ['7'] });
    expect(await failure('downstream-no-engine')).toEqual({ code: GrpcStatus.UNAVAILABLE, details: 'no healthy engine', retryAfter: [] });
    expect(await failure('downstream-refused')).toEqual({ code: GrpcStatus.INTERNAL, details: 'internal error', retryAfter: [] });
  });

  it('leaves the signal of a call that finished normally unaborted (no cancel after the fact)', async () => {
    await client.listModels({});
    for await (const _ of client.chat({ model: 'complete' })) void _;
    expect(finishedCallSignals).toHaveLength(2);
    // Give the transport time to close both streams: grpc-js reports 'cancelled' on close.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(finishedCallSignals.map((signal) => signal.aborted)).toEqual([false, false]);
  });

  it('turns a client cancel into an aborted signal on the server', async () => {
    for await (const message of client.chat({ model: 'wait' })) {
      expect(message.event.case).toBe('delta');
      break; // leaving the loop cancels the call
    }
    await streamAborted;
    expect((lastAbortReason as GrpcError).code).toBe(GrpcStatus.CANCELLED);
  });

  it('enforces the deadline on both sides', async () => {
    let code: number | undefined;
    try {
      for await (const _ of client.chat({ model: 'wait' }, { timeoutMs: 300 })) void _;
    } catch (error) {
      code = isServiceError(error) ? error.code : undefined;
    }
    expect(code).toBe(GrpcStatus.DEADLINE_EXCEEDED);
    await streamAborted;
  });

  it('ends open streams with UNAVAILABLE when the server drains past its grace', async () => {
    const received: string[] = [];
    const consume = (async () => {
      try {
        for await (const message of client.chat({ model: 'wait' })) received.push(message.event.case ?? '');
        return 'ended';
      } catch (error) {
        return isServiceError(error) ? error.code : 'other';
      }
    })();
    while (received.length === 0) await sleep(10);
    const result = await drain.drain(50);
    expect(result.forced).toBe(1);
    expect(await consume).toBe(GrpcStatus.UNAVAILABLE);
  });
});
