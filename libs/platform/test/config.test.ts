import { describe, expect, it } from 'vitest';
import { baseConfigSchema, ConfigError, csv, flag, grpcAddress, parseConfig, z } from '../src';

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

  it('reads on/off flags as true, false, 1 or 0, with their default when unset, and refuses anything else', () => {
    const flags = z.object({ ON: flag(true), OFF: flag(false), SET: flag(false) });
    expect(parseConfig(flags, { SET: '1' })).toEqual({ ON: true, OFF: false, SET: true });
    expect(parseConfig(flags, { ON: 'false', OFF: '0', SET: 'true' })).toEqual({ ON: false, OFF: false, SET: true });
    expect(() => parseConfig(flags, { ON: 'yes' })).toThrow(/ON/);
  });
});
