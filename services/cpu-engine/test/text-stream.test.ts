import { describe, expect, it } from 'vitest';
import { TextStream, type Detokenize } from '../src/engine/text-stream';

// A toy vocabulary: token i is pieces[i]; tokens 90 + 91 together spell "é" (split UTF-8).
const pieces = ['Hello', ' world', '!', ' Stop', 'Here', ' and', ' more', '\n', 'END', 'x'];
const detokenize: Detokenize = (tokens) => {
  const key = tokens.join(',');
  if (key === '90') return '\uFFFD';
  if (key === '90,91') return 'é';
  return tokens.map((token) => pieces[token] ?? '?').join('');
};

function run(tokens: number[], stops: string[]) {
  const stream = new TextStream(detokenize, stops);
  const deltas: string[] = [];
  let stopped = false;
  for (const token of tokens) {
    const step = stream.push(token);
    if (step.delta) deltas.push(step.delta);
    if (step.stopped) {
      stopped = true;
      break;
    }
  }
  if (!stopped) {
    const rest = stream.finish();
    if (rest.delta) deltas.push(rest.delta);
  }
  return { deltas, stopped, output: stream.output };
}

describe('TextStream', () => {
  it('releases text token by token when there are no stop strings', () => {
    expect(run([0, 1, 2], [])).toEqual({ deltas: ['Hello', ' world', '!'], stopped: false, output: 'Hello world!' });
  });

  it('holds a token that ends inside a character until the character is whole', () => {
    expect(run([0, 90, 91, 2], []).deltas).toEqual(['Hello', 'é', '!']);
  });

  it('cuts the output before a stop string, also one that spans tokens', () => {
    expect(run([0, 1, 3, 4, 5], ['StopHere'])).toEqual({ deltas: ['Hello', ' world', ' '], stopped: true, output: 'Hello world ' });
    const spanning = run([0, 1, 3, 4, 5], [' StopHere']);
    expect(spanning).toEqual({ deltas: ['Hello', ' world'], stopped: true, output: 'Hello world' });
  });

  it('holds back a possible stop-string prefix and releases it when it turns out not to be one', () => {
    const stream = new TextStream(detokenize, [' Stop!']);
    expect(stream.push(0).delta).toBe('Hello');
    expect(stream.push(3).delta).toBe(''); // " Stop" could be the start of " Stop!"
    expect(stream.push(5).delta).toBe(' Stop and');
  });

  it('releases a held-back prefix at the end of generation', () => {
    expect(run([0, 3], [' Stop!'])).toEqual({ deltas: ['Hello', ' Stop'], stopped: false, output: 'Hello Stop' });
  });

  it('picks the earliest of several stop strings', () => {
    expect(run([0, 1, 7, 8], ['END', '\n'])).toMatchObject({ stopped: true, output: 'Hello world' });
  });
});
