import { describe, expect, it } from 'vitest';
import { FairQueue } from '../src/flow/fair-queue';
import { laneOf } from '../src/flow/lanes';
import { ThroughputMeter } from '../src/flow/throughput';
import { CircuitBreaker } from '../src/resilience/circuit-breaker';

describe('FairQueue', () => {
  it('serves tenants in turn, so a tenant with many queued requests only delays itself', () => {
    const queue = new FairQueue<{ tenantId: string; n: number }>();
    for (let n = 0; n < 10; n++) queue.push({ tenantId: 'noisy', n });
    queue.push({ tenantId: 'quiet-1', n: 0 });
    queue.push({ tenantId: 'quiet-2', n: 0 });
    const order = Array.from({ length: 6 }, () => queue.take()!.tenantId);
    expect(order.slice(0, 4).filter((tenant) => tenant !== 'noisy')).toHaveLength(2);
    expect(order.slice(3)).toEqual(['noisy', 'noisy', 'noisy']);
    expect(queue.size).toBe(6);
  });

  it('skips tenants whose head cannot go and removes cancelled items', () => {
    const queue = new FairQueue<{ tenantId: string; model: string }>();
    const a = { tenantId: 'a', model: 'big' };
    const b = { tenantId: 'b', model: 'small' };
    queue.push(a);
    queue.push(b);
    expect(queue.take((item) => item.model === 'small')).toBe(b);
    expect(queue.remove(a)).toBe(true);
    expect(queue.remove(a)).toBe(false);
    expect(queue.size).toBe(0);
    expect(queue.take()).toBeUndefined();
  });
});

describe('lanes', () => {
  it('maps priority names to lanes, unknown ones to interactive standard', () => {
    expect(laneOf('interactive_premium')).toBe('interactive_premium');
    expect(laneOf('batch')).toBe('batch');
    expect(laneOf('whatever')).toBe('interactive_standard');
  });
});

describe('ThroughputMeter', () => {
  it('reports completions per second over its window', () => {
    const meter = new ThroughputMeter(10_000);
    for (let i = 0; i < 20; i++) meter.record(1_000 + i * 100); // 20 in 2 s
    expect(meter.perSecond(3_000)).toBeCloseTo(10, 0);
    expect(meter.perSecond(60_000)).toBe(0);
  });
});

describe('CircuitBreaker', () => {
  it('opens after consecutive failures, lets one probe through after the open period, and closes on success', () => {
    const breaker = new CircuitBreaker({ failureThreshold: 3, openMs: 1_000, maxOpenMs: 8_000 });
    expect(breaker.onFailure(0)).toBe(false);
    breaker.onSuccess(); // a success resets the count
    breaker.onFailure(0);
    breaker.onFailure(0);
    expect(breaker.onFailure(0)).toBe(true);
    expect(breaker.state).toBe('open');
    expect(breaker.allows(500)).toBe(false);
    expect(breaker.allows(1_000)).toBe(true);
    breaker.onAttempt();
    expect(breaker.allows(1_001)).toBe(false); // one probe at a time
    expect(breaker.onSuccess()).toBe(true);
    expect(breaker.state).toBe('closed');
  });

  it('re-opens for a doubled period when the probe fails, and frees the probe when it was cancelled', () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, openMs: 1_000, maxOpenMs: 1_500 });
    breaker.onFailure(0);
    expect(breaker.allows(1_000)).toBe(true);
    breaker.onAttempt();
    breaker.onInconclusive();
    expect(breaker.allows(1_000)).toBe(true);
    breaker.onAttempt();
    breaker.onFailure(1_000);
    expect(breaker.allows(2_400)).toBe(false);
    expect(breaker.allows(2_500)).toBe(true); // capped at maxOpenMs
  });
});
