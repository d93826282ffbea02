import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createLogger, Database, HealthRegistry } from '@ai-platform/platform';
import { IdentityStore } from '../auth/identity.store';
import { MIGRATIONS_DIR } from '../app.module';

/**
 * Seeds the development tenant, user and API key, and writes them to the
 * credentials file. Idempotent: a key from an earlier run that still works is kept.
 *
 *   node dist/cli/seed-dev.js <credentials-file> <gateway-url>
 */
async function main() {
  const [outFile, gatewayUrl] = process.argv.slice(2);
  const databaseUrl = process.env.DATABASE_URL;
  if (!outFile || !gatewayUrl || !databaseUrl) {
    process.stderr.write('usage: DATABASE_URL=... seed-dev <credentials-file> <gateway-url>\n');
    process.exit(64);
  }
  const logger = createLogger('gateway-seed', 'warn');
  const database = new Database(databaseUrl, 'gateway', MIGRATIONS_DIR, logger, new HealthRegistry());
  const store = new IdentityStore(database, logger);
  try {
    await database.onModuleInit();
    const tenantId = process.env.DEV_TENANT_ID ?? 'tenant_dev';
    const userId = process.env.DEV_USER_ID ?? 'user_dev';
    await store.ensureTenant(tenantId, 'Development');
    await store.ensureUser(tenantId, userId, 'dev@localhost');

    let apiKey: string | undefined;
    try {
      const previous = JSON.parse(await readFile(outFile, 'utf8')) as { apiKey?: string; tenantId?: string };
      const principal = previous.apiKey ? await store.authenticate(previous.apiKey) : undefined;
      if (principal?.tenantId === tenantId) apiKey = previous.apiKey;
    } catch {
      // no usable earlier credentials
    }
    apiKey ??= (await store.createKey(tenantId, userId, { name: 'development' })).key;

    await mkdir(path.dirname(outFile), { recursive: true });
    await writeFile(outFile, `${JSON.stringify({ gatewayUrl, apiKey, tenantId, userId }, null, 2)}\n`, { mode: 0o600 });
    process.stdout.write(`${outFile}\n`);
  } finally {
    await database.onApplicationShutdown();
  }
}

main().catch((error) => {
  process.stderr.write(`seed-dev failed: ${(error as Error).message}\n`);
  process.exit(1);
});
