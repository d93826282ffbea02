import { MICROS_PER_CREDIT } from '@ai-platform/pricing';

const PER_CREDIT = BigInt(MICROS_PER_CREDIT);

/** `1234567n` → `"1.234567 credits"`; exact, no floating point. */
export function formatCredits(micros: bigint): string {
  const sign = micros < 0n ? '-' : '';
  const abs = micros < 0n ? -micros : micros;
  const whole = abs / PER_CREDIT;
  const fraction = (abs % PER_CREDIT).toString().padStart(6, '0');
  return `${sign}${whole}.${fraction} credits`;
}

export function creditsToMicros(credits: number): bigint {
  return BigInt(credits) * PER_CREDIT;
}

/** pg returns bigint and numeric aggregates as strings. */
export function toBigInt(value: string | number | bigint | null | undefined): bigint {
  if (value === null || value === undefined) return 0n;
  return BigInt(value);
}
