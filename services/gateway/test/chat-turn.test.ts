import type { orchestrator } from '@ai-platform/contracts';
import { Metadata } from '@grpc/grpc-js';
import { ApiError, GrpcStatus } from '@ai-platform/platform';
import { describe, expect, it } from 'vitest';
import { startTurn, toPublicError } from '../src/openai/chat-turn';

type Step = { after: number; event?: orchestrator.ChatResponse['event']; fail?: Error };

const started = { case: 'started', value: { conversationId: 'c1', model: 'm' } } as orchestrator.ChatResponse['event'];
const delta = (text: string) => ({ case: 'delta', value: { text } }) as orchestrator.ChatResponse['event'];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An orchestrator stream that yields or throws each step after its delay, and records what was asked of it. */
function upstream(steps: Step[]) {
  const log = { pulls: 0 };
  async function* run(): AsyncGenerator<orchestrator.ChatResponse> {
    for (const step of steps) {
      log.pulls += 1;
      await sleep(step.after);
      if (step.fail) throw step.fail;
      yield { event: step.event } as orchestrator.ChatResponse;
    }
  }
  return { stream: run(), log };
}

async function drain(events: AsyncIterator<orchestrator.ChatResponse>) {
  const seen: string[] = [];
  for (let next = await events.next(); !next.done; next = await events.next()) seen.push(next.value.event.case ?? '');
  return seen;
}

describe('startTurn', () => {
  it('rejects with the failure when the model call fails before its first token, within the wait', async () => {
    const { stream } = upstream([{ after: 0, event: started }, { after: 5, fail: new ApiError(503, 'service_unavailable', 'no healthy engine', 'service_unavailable') }]);
    await expect(startTurn(stream, 1_000)).rejects.toMatchObject({ status: 503, message: 'no healthy engine' });
  });

  it('hands the first token on exactly once when it comes within the wait', async () => {
    const { stream } = upstream([{ after: 0, event: started }, { after: 5, event: delta('a') }, { after: 0, event: delta('b') }]);
    const turn = await startTurn(stream, 1_000);
    expect(turn.conversationId).toBe('c1');
    expect(await drain(turn.events)).toEqual(['delta', 'delta']);
  });

  it('commits once the wait is over and delivers a later failure to the reader', async () => {
    const { stream } = upstream([{ after: 0, event: started }, { after: 80, fail: new Error('engine lost') }]);
    const turn = await startTurn(stream, 10);
    await expect(turn.events.next()).rejects.toThrow('engine lost');
  });

  it('commits once the wait is over and delivers a late first token', async () => {
    const { stream } = upstream([{ after: 0, event: started }, { after: 60, event: delta('late') }]);
    const turn = await startTurn(stream, 10);
    expect(await drain(turn.events)).toEqual(['delta']);
  });

  it('with no wait asks for nothing beyond the started event', async () => {
    const { stream, log } = upstream([{ after: 0, event: started }, { after: 0, event: delta('a') }]);
    const turn = await startTurn(stream, 0);
    expect(log.pulls).toBe(1);
    expect(await drain(turn.events)).toEqual(['delta']);
  });

  it('refuses a stream whose first event is not started', async () => {
    const { stream } = upstream([{ after: 0, event: delta('a') }]);
    await expect(startTurn(stream, 1_000)).rejects.toMatchObject({ status: 502 });
  });
});

describe('toPublicError', () => {
  const serviceError = (code: number, details: string, retryAfter?: string) => {
    const metadata = new Metadata();
    if (retryAfter !== undefined) metadata.set('retry-after', retryAfter);
    return Object.assign(new Error(details), { code, details, metadata });
  };

  it("keeps the scheduler's retry hint on a 429 and a 503", () => {
    const shed = toPublicError(serviceError(GrpcStatus.RESOURCE_EXHAUSTED, 'queue full', '7'));
    expect([shed.status, shed.headers['retry-after']]).toEqual([429, '7']);
    const down = toPublicError(serviceError(GrpcStatus.UNAVAILABLE, 'no engine', '3'));
    expect([down.status, down.headers['retry-after']]).toEqual([503, '3']);
  });

  it('falls back to its default hint when the upstream gave none or a malformed one', () => {
    expect(toPublicError(serviceError(GrpcStatus.UNAVAILABLE, 'no engine')).headers['retry-after']).toBe('1');
    expect(toPublicError(serviceError(GrpcStatus.UNAVAILABLE, 'no engine', '1; rm -rf')).headers['retry-after']).toBe('1');
  });

  it('adds no retry hint to an error that has none', () => {
    expect(toPublicError(serviceError(GrpcStatus.NOT_FOUND, 'no such conversation', '5')).headers).toEqual({});
  });
});
