/**
 * The pooled random bytes behind SCRAM nonces, cancel keys and MD5 salts: right lengths, every call
 * fresh bytes (across pool refills too), and the caller's copy independent of the pool.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from '../src/auth/random.ts';

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

describe('randomBytes', () => {
  it('returns the length asked for, pooled or not', () => {
    for (const n of [0, 1, 4, 18, 32, 256, 257, 5000]) expect(randomBytes(n).length).toBe(n);
  });

  it('never repeats itself across many pool refills', () => {
    // 20,000 × 32 bytes walk through the 4 KiB pool ~160 times, at every alignment of 18 and 4 too.
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      for (const n of [32, 18, 4]) {
        const b = randomBytes(n);
        if (n === 32) {
          expect(b.some((x) => x !== 0)).toBe(true); // a drained, unrefilled pool hands out zeros
          seen.add(hex(b));
        }
      }
    }
    expect(seen.size).toBe(20_000);
  });

  it('hands out a copy: zeroing the used pool bytes does not reach it, nor does the caller reach the pool', () => {
    const a = randomBytes(32);
    const keep = hex(a);
    for (let i = 0; i < 300; i++) randomBytes(32); // past a refill
    expect(hex(a)).toBe(keep);
    a.fill(0);
    expect(randomBytes(32).some((x) => x !== 0)).toBe(true);
    expect(a.buffer.byteLength).toBe(32); // its own buffer, not a view of the pool's
  });

  it('looks uniform: every byte value, mean near 127.5', () => {
    const counts = new Array<number>(256).fill(0);
    let sum = 0;
    const total = 200_000;
    for (let i = 0; i < total / 20; i++) {
      for (const x of randomBytes(20)) {
        counts[x]!++;
        sum += x;
      }
    }
    expect(Math.min(...counts)).toBeGreaterThan(0);
    // Standard error of the mean over 200,000 uniform bytes is ~0.17: 2 is ~12 of them.
    expect(Math.abs(sum / total - 127.5)).toBeLessThan(2);
  });
});
