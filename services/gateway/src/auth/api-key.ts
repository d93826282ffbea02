import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const KEY_FORMAT = /^pk_([A-Za-z0-9]{12,32})_([A-Za-z0-9]{24,64})$/;

export interface ParsedKey {
  id: string;
  secret: string;
}

/** Splits `pk_<id>_<secret>`; anything else is not a key. */
export function parseApiKey(value: string): ParsedKey | undefined {
  const match = KEY_FORMAT.exec(value);
  return match ? { id: match[1]!, secret: match[2]! } : undefined;
}

export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** Constant-time comparison of a presented secret with the stored hash. */
export function secretMatches(secret: string, storedHash: Buffer): boolean {
  const presented = hashSecret(secret);
  return presented.length === storedHash.length && timingSafeEqual(presented, storedHash);
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function randomToken(length: number): string {
  // Rejection sampling keeps every character equally likely (256 is not a multiple of 62).
  const limit = 256 - (256 % ALPHABET.length);
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < limit && out.length < length) out += ALPHABET[byte % ALPHABET.length];
    }
  }
  return out;
}

export function generateApiKey(): { id: string; secret: string; key: string } {
  const id = randomToken(16);
  const secret = randomToken(40);
  return { id, secret, key: `pk_${id}_${secret}` };
}
