import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** CPUs this container may use: the cgroup quota (v2, then v1) when set, else the cores it can run on. */
export function usableCpus(): number {
  const cores = availableParallelism();
  const quota = readCgroupQuota();
  return quota ? Math.max(1, Math.min(cores, Math.ceil(quota))) : cores;
}

function readCgroupQuota(): number | undefined {
  try {
    const [max, period] = readFileSync('/sys/fs/cgroup/cpu.max', 'utf8').trim().split(/\s+/);
    if (max && max !== 'max' && period) return Number(max) / Number(period);
    return undefined;
  } catch {
    /* not cgroup v2 */
  }
  try {
    const quota = Number(readFileSync('/sys/fs/cgroup/cpu/cpu.cfs_quota_us', 'utf8'));
    const period = Number(readFileSync('/sys/fs/cgroup/cpu/cpu.cfs_period_us', 'utf8'));
    return quota > 0 && period > 0 ? quota / period : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Evaluation threads by default: one fewer than the usable CPUs (at least 1).
 * llama.cpp's threads spin at their barriers; when they outnumber the CPUs
 * actually free (the Node event loop, other pods or processes), a decode step
 * waits for descheduled threads and throughput collapses (measured on 2 cores
 * under load: 2 threads 3 tok/s, 1 thread 25 tok/s). Set THREADS to the core
 * count on a node dedicated to the engine.
 */
export function defaultThreads(): number {
  return Math.max(1, usableCpus() - 1);
}
