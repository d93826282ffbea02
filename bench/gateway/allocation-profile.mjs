// Preload for one service (NODE_OPTIONS="--import ./bench/gateway/allocation-profile.mjs"): V8's
// sampling heap profiler, counting every sampled allocation, also those a scavenge or a mark-compact
// has freed since. SIGUSR2 starts sampling; a second SIGUSR2 writes the profile to
// ALLOCATION_PROFILE_FILE (default /tmp/<pid>.heapprofile) and stops it.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const session = new Session();
session.connect();
const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))));
let sampling = false;
process.on('SIGUSR2', async () => {
  if (!sampling) {
    sampling = true;
    await post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    return;
  }
  const { profile } = await post('HeapProfiler.stopSampling');
  sampling = false;
  writeFileSync(process.env.ALLOCATION_PROFILE_FILE ?? `/tmp/${process.pid}.heapprofile`, JSON.stringify(profile));
});
