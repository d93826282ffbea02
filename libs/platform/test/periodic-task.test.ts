import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { PeriodicTask } from '../src';

const logger = pino({ level: 'silent' });

describe('PeriodicTask', () => {
  it('never runs two passes at once: a second caller joins the running pass', async () => {
    let passes = 0;
    let release!: () => void;
    const task = new PeriodicTask('test', async () => {
      passes++;
      await new Promise<void>((resolve) => (release = resolve));
      return passes;
    }, logger, -1);
    const first = task.runOnce();
    const second = task.runOnce();
    release();
    expect(await Promise.all([first, second])).toEqual([1, 1]);
    expect(passes).toBe(1);
  });

  it('turns a failed pass into the failure value and runs again next time', async () => {
    let calls = 0;
    const task = new PeriodicTask('test', async () => {
      calls++;
      if (calls === 1) throw new Error('database down');
      return 7;
    }, logger, 0);
    expect(await task.runOnce()).toBe(0);
    expect(await task.runOnce()).toBe(7);
  });

  it('stop waits for the pass in progress', async () => {
    let finished = false;
    const task = new PeriodicTask('test', async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      finished = true;
    }, logger, undefined);
    task.start(60_000);
    void task.runOnce();
    await task.stop();
    expect(finished).toBe(true);
  });
});
