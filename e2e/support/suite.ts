import OpenAI from 'openai';
import { Pool } from 'pg';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { TestStack, type Credentials, type ServiceName } from './stack';

export interface Suite {
  stack: TestStack;
  tenant: Credentials;
  client: OpenAI;
  db: Pool;
}

/**
 * Starts a whole stack for the calling test file, with one tenant, an OpenAI
 * client for it and a Postgres pool to check what services stored. Prints every
 * service's recent output when a test fails, and stops everything at the end.
 */
export function useStack(extra: Partial<Record<ServiceName, Record<string, string>>> = {}): Suite {
  const suite = {} as Suite;
  beforeAll(async () => {
    suite.stack = await TestStack.start(extra);
    suite.tenant = suite.stack.createTenant();
    suite.client = new OpenAI({ apiKey: suite.tenant.apiKey, baseURL: `${suite.stack.gatewayUrl}/v1`, maxRetries: 0 });
    suite.db = new Pool({ connectionString: process.env.DATABASE_URL });
  });
  afterEach((context) => {
    if (context.task.result?.state === 'fail') suite.stack?.printLogs();
  });
  afterAll(async () => {
    await suite.db?.end();
    await suite.stack?.stop();
  });
  return suite;
}
