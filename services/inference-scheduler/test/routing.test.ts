import { describe, expect, it } from 'vitest';
import { Engine } from '../src/engines/engine';
import { LeastLoadPicker, type EnginePicker, type RouteRequest } from '../src/routing/picker';

const request: RouteRequest = { model: 'm', messages: [{ role: 'user', content: 'hi' }], tenantId: 't', priority: 'interactive_standard' };

function engine(id: string, options: { inFlight?: number; running?: number; waiting?: number; inFlightAtScrape?: number } = {}): Engine {
  const result = new Engine(id, `http://${id}`);
  result.healthy = true;
  result.models = [{ id: 'm', maxModelLen: 2048 }];
  result.inFlight = options.inFlight ?? 0;
  if (options.running !== undefined || options.waiting !== undefined) {
    result.scraped = { running: options.running ?? 0, waiting: options.waiting ?? 0 };
    result.inFlightAtScrape = options.inFlightAtScrape ?? 0;
  }
  return result;
}

describe('Engine', () => {
  it('derives a stable id from the URL', () => {
    expect(Engine.fromUrl('http://127.0.0.1:8000/').id).toBe('127.0.0.1:8000');
    expect(Engine.fromUrl('https://engine.example/v').id).toBe('engine.example:443/v');
    expect(Engine.fromUrl('http://127.0.0.1:8000/').baseUrl).toBe('http://127.0.0.1:8000');
  });

  it('does not count our own request that started or ended during a scrape as external load', () => {
    const started = engine('a');
    started.beginScrape();
    started.acquire(); // begins while the scrape runs; the engine may already report it
    started.endScrape({ running: 1, waiting: 0 });
    expect(started.load).toBe(1);
    const ended = engine('b');
    ended.acquire();
    ended.beginScrape();
    ended.release(); // ends while the scrape runs; the engine may still report it
    ended.endScrape({ running: 1, waiting: 0 });
    expect(ended.load).toBe(0);
  });

  it('counts load as our in-flight requests plus what others run or queue there', () => {
    expect(engine('a', { inFlight: 2 }).load).toBe(2);
    expect(engine('a', { inFlight: 1, running: 3, waiting: 2 }).load).toBe(6);
    // Our own requests are in the scrape too: they are not counted twice.
    expect(engine('a', { inFlight: 2, running: 2, waiting: 0, inFlightAtScrape: 2 }).load).toBe(2);
    // A scrape older than our latest requests never makes the external load negative.
    expect(engine('a', { inFlight: 3, running: 0, inFlightAtScrape: 2 }).load).toBe(3);
  });
});

describe('LeastLoadPicker', () => {
  it('picks the least loaded engine', () => {
    const picker = new LeastLoadPicker();
    const a = engine('a', { inFlight: 2 });
    const b = engine('b', { inFlight: 0, running: 1 });
    const c = engine('c', { inFlight: 1, running: 4 });
    expect(picker.pick([a, b, c], request).id).toBe('b');
  });

  it('takes scraped waiting requests into account', () => {
    const picker = new LeastLoadPicker();
    expect(picker.pick([engine('a', { running: 1, waiting: 5 }), engine('b', { running: 3 })], request).id).toBe('b');
  });

  it('breaks ties round robin, whatever order the candidates come in', () => {
    const picker = new LeastLoadPicker();
    const a = engine('a');
    const b = engine('b');
    const c = engine('c');
    const picks = [picker.pick([a, b, c], request), picker.pick([c, b, a], request), picker.pick([b, a, c], request), picker.pick([a, b, c], request)].map((e) => e.id);
    expect(picks).toEqual(['a', 'b', 'c', 'a']);
  });

  it('spreads concurrent calls when each pick is counted in flight', () => {
    const picker = new LeastLoadPicker();
    const engines = [engine('a'), engine('b')];
    for (let i = 0; i < 10; i++) picker.pick(engines, request).inFlight++;
    expect(engines.map((e) => e.inFlight)).toEqual([5, 5]);
  });

  it('returns the only candidate and refuses an empty list', () => {
    const picker = new LeastLoadPicker();
    const only = engine('only', { inFlight: 100 });
    expect(picker.pick([only], request)).toBe(only);
    expect(() => picker.pick([], request)).toThrow();
  });

  it('is replaceable: any EnginePicker implementation routes the same candidates', () => {
    // A prefix-aware picker plugs in behind the same interface.
    class FirstMessageAffinity implements EnginePicker {
      readonly name = 'affinity';
      pick(candidates: readonly Engine[], route: RouteRequest): Engine {
        const hash = [...(route.messages[0]?.content ?? '')].reduce((sum, char) => sum + char.charCodeAt(0), 0);
        return candidates[hash % candidates.length]!;
      }
    }
    const picker: EnginePicker = new FirstMessageAffinity();
    const engines = [engine('a'), engine('b')];
    expect(picker.pick(engines, request).id).toBe(picker.pick(engines, request).id);
  });
});
