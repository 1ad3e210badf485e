/**
 * Server side of cleartext `password` authentication: check the password the client sent against the
 * role's stored secret, as the backend's `plain_crypt_verify` does. A SCRAM secret is checked by
 * recomputing its ServerKey, an MD5 secret by recomputing `md5(password ‖ user)`, both compared in
 * constant time. Anything else (including a plaintext value: PostgreSQL never stores those) never
 * matches.
 */
import { utf8 } from './bytes.ts';
import { constantTimeEqual } from './constant-time.ts';
import { md5Verifier } from './md5.ts';
import { parseScramVerifier, verifyScramPlainPassword } from './scram.ts';

const MD5_VERIFIER_RE = /^md5[0-9a-f]{32}$/;

export async function verifyCleartextPassword(
  storedSecret: string,
  user: string,
  password: string,
): Promise<boolean> {
  if (MD5_VERIFIER_RE.test(storedSecret)) {
    return constantTimeEqual(utf8(md5Verifier(user, password)), utf8(storedSecret));
  }
  const scram = parseScramVerifier(storedSecret);
  if (scram) return verifyScramPlainPassword(password, scram);
  return false;
}
