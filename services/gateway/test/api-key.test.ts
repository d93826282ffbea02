import { describe, expect, it } from 'vitest';
import { generateApiKey, hashSecret, parseApiKey, secretMatches } from '../src/auth/api-key';

describe('API keys', () => {
  it('generates pk_<id>_<secret> keys that parse back and verify', () => {
    const { id, secret, key } = generateApiKey();
    expect(key).toMatch(/^pk_[A-Za-z0-9]{16}_[A-Za-z0-9]{40}$/);
    expect(parseApiKey(key)).toEqual({ id, secret });
    expect(secretMatches(secret, hashSecret(secret))).toBe(true);
    const nearMiss = `${secret.slice(0, -1)}${secret.endsWith('x') ? 'y' : 'x'}`;
    expect(secretMatches(nearMiss, hashSecret(secret))).toBe(false);
  });

  it('never generates the same key twice', () => {
    const keys = new Set(Array.from({ length: 1000 }, () => generateApiKey().key));
    expect(keys.size).toBe(1000);
  });

  it.each(['', 'pk_', 'sk-123', 'pk_short_secret', 'pk_AAAAAAAAAAAAAAAA_B', `pk_${'A'.repeat(16)}_${'B'.repeat(40)}\n`, 'pk_AAAA-AAAAAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB'])(
    'rejects a malformed key %j',
    (value) => expect(parseApiKey(value)).toBeUndefined(),
  );
});
