/**
 * Constant-time comparison for secrets (nonces, keys, signatures, password hashes), the equivalent of
 * PostgreSQL's `timingsafe_bcmp` use after CVE-2026-6478.
 */

/**
 * True when `a` and `b` hold the same bytes. The running time depends only on the lengths, never on
 * where the contents differ: a length mismatch still walks the longer input before returning false.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  const n = Math.max(a.length, b.length);
  let diff = a.length ^ b.length;
  for (let i = 0; i < n; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}
