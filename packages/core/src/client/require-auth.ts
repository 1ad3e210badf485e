/**
 * require_auth (PG16): which authentication requests the client will answer, and whether the server
 * must authenticate at all. Parsing and the check follow libpq's check_expected_areq, wording included.
 */
import { AuthCode } from '../codec/constants.ts';
import { AuthError, OptionError } from '../errors.ts';

export type AuthMethodName = 'password' | 'md5' | 'gss' | 'sspi' | 'scram-sha-256' | 'oauth' | 'none';

const METHODS: readonly AuthMethodName[] = [
  'password',
  'md5',
  'gss',
  'sspi',
  'scram-sha-256',
  'oauth',
  'none',
];

export interface RequireAuth {
  /** The option as given, for error messages; '' when unset. */
  raw: string;
  allowed: ReadonlySet<AuthMethodName>;
  /** The server must complete an authentication exchange before AuthenticationOk. */
  authRequired: boolean;
}

export const REQUIRE_AUTH_ANY: RequireAuth = { raw: '', allowed: new Set(METHODS), authRequired: false };

export function parseRequireAuth(raw: string | undefined): RequireAuth {
  if (raw === undefined || raw === '') return REQUIRE_AUTH_ANY;
  const parts = raw.split(',');
  const negated = parts[0]!.startsWith('!');
  const allowed = new Set<AuthMethodName>(negated ? METHODS : []);
  const seen = new Set<string>();
  for (const part of parts) {
    const neg = part.startsWith('!');
    const name = neg ? part.slice(1) : part;
    if (neg !== negated) {
      throw new OptionError(
        neg
          ? `negative require_auth method "${part}" cannot be mixed with non-negative methods`
          : `require_auth method "${part}" cannot be mixed with negative methods`,
      );
    }
    if (!(METHODS as readonly string[]).includes(name))
      throw new OptionError(`invalid require_auth value: "${part}"`);
    if (seen.has(name)) throw new OptionError(`require_auth method "${part}" is specified more than once`);
    seen.add(name);
    const method = name as AuthMethodName;
    if (negated) allowed.delete(method);
    else allowed.add(method);
  }
  // An exchange is required unless "none" is in the allowed set ("!md5" leaves it allowed).
  return { raw, allowed, authRequired: !allowed.has('none') };
}

const methodOf = (code: number): AuthMethodName | null => {
  switch (code) {
    case AuthCode.CleartextPassword:
      return 'password';
    case AuthCode.MD5Password:
      return 'md5';
    case AuthCode.GSS:
    case AuthCode.GSSContinue:
      return 'gss';
    case AuthCode.SSPI:
      return 'sspi';
    case AuthCode.SASL:
    case AuthCode.SASLContinue:
    case AuthCode.SASLFinal:
      return 'scram-sha-256';
    default:
      return null;
  }
};

const DESCRIPTIONS: Record<AuthMethodName, string> = {
  password: 'server requested a cleartext password',
  md5: 'server requested a hashed password',
  gss: 'server requested GSSAPI authentication',
  sspi: 'server requested SSPI authentication',
  'scram-sha-256': 'server requested SASL authentication',
  oauth: 'server requested OAuth authentication',
  none: 'server did not complete authentication',
};

/**
 * Throws AuthError unless the request `code` is acceptable. `finishedAuth`: the client has completed
 * an exchange (sent a password, or verified a SCRAM server signature).
 */
export function checkRequireAuth(policy: RequireAuth, code: number, finishedAuth: boolean): void {
  if (policy.raw === '') return;
  let reason: string | null = null;
  if (code === AuthCode.Ok) {
    if (policy.authRequired && !finishedAuth) reason = DESCRIPTIONS.none;
  } else {
    const method = methodOf(code);
    if (method === null) reason = 'server requested an unknown authentication type';
    else if (method === 'scram-sha-256') {
      // libpq 18: SASL requests pass while any SASL mechanism (scram-sha-256, oauth) is allowed; the
      // mechanism itself is checked once chosen (checkSaslMechanism).
      if (!policy.allowed.has('scram-sha-256') && !policy.allowed.has('oauth')) reason = DESCRIPTIONS[method];
    } else if (!policy.allowed.has(method)) reason = DESCRIPTIONS[method];
  }
  if (reason) throw new AuthError(`authentication method requirement "${policy.raw}" failed: ${reason}`);
}

/**
 * pg_SASL_init's require_auth check (libpq 18) for the mechanism the client chose, e.g.
 * `require_auth=!scram-sha-256` → `server requested SCRAM-SHA-256-PLUS authentication`.
 */
export function checkSaslMechanism(policy: RequireAuth, mechanism: string): void {
  if (policy.raw === '' || policy.allowed.has('scram-sha-256')) return;
  throw new AuthError(
    `authentication method requirement "${policy.raw}" failed: server requested ${mechanism} authentication`,
  );
}
