/**
 * What the application tells the server handshake about a role: which method to run and the secret
 * to check against (PostgreSQL's pg_hba.conf line plus pg_authid.rolpassword, as one answer). The
 * provider is asked once per connection, after the startup packet, the way `ClientAuthentication`
 * consults `hba_getauthmethod` and then `get_role_password`.
 */
import type { ScramVerifier } from '../auth/scram.ts';
import type { TlsInfo } from '../transport.ts';

/** PostgreSQL's limit on a PasswordMessage / GSSResponse (`PG_MAX_AUTH_TOKEN_LENGTH`, auth.c). */
export const PG_MAX_AUTH_TOKEN_LENGTH = 65535;
/** PostgreSQL's limit on a SASL message (`PG_MAX_SASL_MESSAGE_LENGTH`, auth-sasl.c). */
export const PG_MAX_SASL_MESSAGE_LENGTH = 1024;
/** User and database names are cut to NAMEDATALEN - 1 bytes (ProcessStartupPacket). */
export const NAMEDATALEN = 64;

/**
 * What a transport reports after a *server-side* TLS handshake. Same shape as the client's TlsInfo,
 * read from the other end: `peerCertificate` is the client's certificate (DER) if it sent one, and
 * `authorized` says whether that certificate's chain verified against the CA the server requested
 * client certificates with (false when there was none). `alpnProtocol` is what the server selected.
 */
export interface ServerTlsInfo extends TlsInfo {
  alpnProtocol?: string | null;
  peerCertificate?: Uint8Array;
  authorized: boolean;
}

/** What the auth provider learns about the connection before it decides. */
export interface AuthRequest {
  user: string;
  database: string;
  /** `replication` startup parameter: false, true (physical) or 'database' (logical). */
  replication: boolean | 'database';
  /** Null on a plaintext connection. */
  tls: ServerTlsInfo | null;
  /** True when TLS came from a direct (ALPN) connection rather than SSLRequest. */
  direct: boolean;
  remoteHost: string;
  /** Startup parameters as sent, `_pq_.*` protocol options excluded. */
  parameters: ReadonlyMap<string, string>;
  /** Negotiated protocol version, e.g. 0x00030002. */
  protocolVersion: number;
}

/**
 * The method to run for this connection (pg_hba.conf's method column) with the role's secret.
 *
 * - `trust`: AuthenticationOk at once.
 * - `password`: AuthenticationCleartextPassword; `verify` gets the password and must compare in
 *   constant time (e.g. `verifyCleartextPassword(storedSecret, user, password)`). Unknown users:
 *   return false, the client sees the same message as for a wrong password.
 * - `md5`: AuthenticationMD5Password against an `md5…` verifier. As in PostgreSQL, a SCRAM secret
 *   (string form) switches to SCRAM-SHA-256 (CheckPWChallengeAuth). `null` (unknown user) still runs
 *   the MD5 exchange and fails at the end.
 * - `scram-sha-256`: SASL with SCRAM-SHA-256-PLUS (over TLS, when our certificate is known) and
 *   SCRAM-SHA-256. `null` (unknown user, or no SCRAM secret) runs a mock exchange that fails exactly
 *   like a wrong password, so role existence is not revealed.
 * - `cert`: the client certificate must have verified and its first CN must equal the user.
 * - `reject`: FATAL 28000, PostgreSQL's `pg_hba.conf rejects connection …` unless `message` is given.
 */
export type AuthPlan =
  | { method: 'trust' }
  | { method: 'password'; verify: (password: string) => boolean | Promise<boolean> }
  | { method: 'md5'; storedVerifier: string | null }
  | { method: 'scram-sha-256'; verifier: ScramVerifier | string | null }
  | { method: 'cert' }
  | { method: 'reject'; message?: string };

export type AuthProvider = (request: AuthRequest) => AuthPlan | Promise<AuthPlan>;

/** The method that actually authenticated the session (an `md5` plan may have run SCRAM). */
export type ServerAuthMethod = 'trust' | 'password' | 'md5' | 'SCRAM-SHA-256' | 'SCRAM-SHA-256-PLUS' | 'cert';
