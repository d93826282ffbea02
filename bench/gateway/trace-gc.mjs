// Preload for the services (BENCH_SERVICE_NODE_OPTIONS="--import ./bench/gateway/trace-gc.mjs"):
// V8's --trace-gc, which NODE_OPTIONS does not accept, turned on at start-up. Every
// scavenge and mark-compact is then printed with its pause; BENCH_SERVICE_LOG_DIR keeps them.
import v8 from 'node:v8';

v8.setFlagsFromString('--trace-gc');
