import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { activeTraceIds, createLogger, runWithContext, startTelemetry, withSpan } from '../src';

describe('createLogger', () => {
  it('writes JSON lines carrying the trace, span, tenant and request ids', async () => {
    startTelemetry({ serviceName: 'logger-test', inMemory: true });
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _encoding, done) { lines.push(chunk.toString()); done(); } });
    const logger = createLogger('svc', 'info', sink);
    const ids = await withSpan('op', {}, async () =>
      runWithContext({ tenantId: 't-1', requestId: 'r-1' }, async () => {
        logger.info({ apiKey: 'pk_should_not_appear' }, 'hello');
        return activeTraceIds();
      }),
    );
    const line = JSON.parse(lines[0]!);
    expect(line).toMatchObject({ level: 'info', service: 'svc', msg: 'hello', trace_id: ids.traceId, span_id: ids.spanId, tenant_id: 't-1', request_id: 'r-1' });
    expect(lines[0]).not.toContain('pk_should_not_appear');
  });
});
