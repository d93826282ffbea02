import { describe, expect, it } from 'vitest';
import { baseConfigSchema, ConfigError, csv, grpcAddress, parseConfig, z } from '../src';

const schema = baseConfigSchema.extend({ DATABASE_URL: z.string().startsWith('postgres'), PEERS: csv(), UPSTREAM: grpcAddress() });

describe('parseConfig', () => {
  it('parses and coerces a valid environment with defaults', () => {
    const config = parseConfig(schema, { HTTP_PORT: '8080', DATABASE_URL: 'postgres://x', PEERS: 'a, b,,c', UPSTREAM: 'orchestrator:50051' });
    expect(config).toMatchObject({ HTTP_PORT: 8080, LOG_LEVEL: 'info', SHUTDOWN_GRACE_MS: 20_000, PEERS: ['a', 'b', 'c'] });
  });

  it('names every missing or invalid variable', () => {
    let error: unknown;
    try {
      parseConfig(schema, { HTTP_PORT: 'eighty', DATABASE_URL: 'mysql://x', PEERS: 'a' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain('HTTP_PORT');
    expect(message).toContain('DATABASE_URL');
    expect(message).toMatch(/UPSTREAM: is required but not set/);
  });
});
