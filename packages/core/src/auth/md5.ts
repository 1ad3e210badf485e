/**
 * MD5 password authentication (AuthenticationMD5Password, protocol code 5), both roles.
 *
 * The response is `"md5" + md5hex(md5hex(password ‖ user) ‖ salt)`, exactly as libpq's
 * `pg_password_sendauth` builds it; the stored form (pg_authid.rolpassword) is
 * `"md5" + md5hex(password ‖ user)`. Strings are hashed as UTF-8. MD5 is a legacy, weak hash and only
 * exists here for compatibility with servers that still use it.
 */
import { md5 } from '@noble/hashes/legacy.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { concatBytes, utf8 } from './bytes.ts';
import { constantTimeEqual } from './constant-time.ts';

const MD5_VERIFIER_RE = /^md5[0-9a-f]{32}$/;

function md5hex(data: Uint8Array): string {
  return bytesToHex(md5(data));
}

/** The stored verifier for (user, password): `"md5" + md5hex(password ‖ user)` (35 characters). */
export function md5Verifier(user: string, password: string): string {
  return `md5${md5hex(utf8(password + user))}`;
}

/** From the 32 hex digits of a stored verifier and the 4-byte salt: `"md5" + md5hex(hex ‖ salt)`. */
function saltedResponse(verifierHex: string, salt: Uint8Array): string {
  return `md5${md5hex(concatBytes(utf8(verifierHex), salt))}`;
}

/** The client's PasswordMessage payload for AuthenticationMD5Password with the given 4-byte salt. */
export function md5PasswordResponse(user: string, password: string, salt: Uint8Array): string {
  return saltedResponse(md5Verifier(user, password).slice(3), salt);
}

/**
 * Server side: does `response` (what the client sent) match the stored `md5...` verifier for this
 * salt? Compared in constant time (CVE-2026-6478). A stored value that is not an MD5 verifier (e.g. a
 * SCRAM secret) cannot be used for MD5 authentication and always yields false, as in PostgreSQL.
 */
export function verifyMd5Response(storedVerifier: string, salt: Uint8Array, response: string): boolean {
  if (!MD5_VERIFIER_RE.test(storedVerifier)) return false;
  const expected = saltedResponse(storedVerifier.slice(3), salt);
  return constantTimeEqual(utf8(expected), utf8(response));
}
