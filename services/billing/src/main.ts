import { startBilling } from './service';

startBilling().catch((error: unknown) => {
  process.stderr.write(`billing failed to start: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
