/**
 * Maps the core's TLS options onto Deno's node:tls and reads back TlsInfo. Deno's node:tls runs on
 * rustls; what it cannot do is refused here with an UnsupportedError naming the capability, never
 * passed on to be ignored (README.md, "Capability matrix"):
 *
 * - CRLs: the `crl` option is accepted and ignored (a revoked certificate still verifies).
 * - TLS below 1.2: rustls has none. A lower *minimum* is harmless (1.2 is used: stricter, not weaker);
 *   a *maximum* below 1.2 cannot be honoured.
 * - Client certificates on the server side: the server never verifies them (`authorized` is always
 *   false, and with rejectUnauthorized a certificate from an unknown CA is accepted), so a server
 *   asked to request or verify one (a client CA, `requestCert`) refuses with an UnsupportedError
 *   before the handshake. Without a client CA, server TLS works as usual.
 *
 * Private keys are loaded here, not by node:tls: Deno's node:tls silently drops an encrypted key it
 * cannot decrypt (the handshake then goes on without a client certificate) and reports a garbled or
 * mismatched key as "unsupported protocol". Every key is parsed with node:crypto (an encrypted one
 * decrypted with the passphrase and handed on as unencrypted PKCS#8 PEM, in memory only) and checked
 * against its certificate, so these fail like libpq: `bad decrypt`, `key values mismatch`.
 *
 * As on Node, chain errors are reported (authorized / authorizationError) rather than thrown, and no
 * host-name check is made here: the core applies libpq's rules to the peer certificate.
 */
import { Buffer } from 'node:buffer';
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import {
  type TlsClientOptions,
  type TlsInfo,
  type TlsServerOptions,
  type TlsVersion,
  UnsupportedError,
} from '@pgconn/core';

/** What a server reports for a client certificate it received but could not verify. */
export const CLIENT_CERT_UNVERIFIED =
  "client certificate not verified: Deno's node:tls server does not verify client certificate chains";

/** The UnsupportedError's message when a server is asked to request or verify client certificates. */
export const SERVER_CLIENT_CERT_UNSUPPORTED =
  'client certificate verification on the server side is not supported on Deno: its node:tls server does not verify client certificate chains (authorized is always false; a certificate from an unknown CA is accepted), so a client CA (ssl_ca_file) or requestCert, needed for cert authentication and clientcert=verify-ca/verify-full, is refused';

const toBuffer = (v: Uint8Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

/** node:tls takes PEM; libpq also accepts DER (tried after PEM), so convert DER here. */
function certPem(cert: string | Uint8Array): string {
  return typeof cert === 'string' ? cert : new X509Certificate(toBuffer(cert)).toString();
}

/** `error:1C800064:Provider routines::bad decrypt` → `bad decrypt` (OpenSSL's reason string). */
const OPENSSL_ERROR = /^error:[0-9A-Fa-f]+:[^:]*:[^:]*:(.+)$/;

/**
 * An error carrying OpenSSL's reason, which the core prints as libpq's `SSL error: <reason>` (Node's
 * own errors carry it; Deno's node:crypto puts it in the message only).
 */
function sslError(what: string, reason: string, cause?: unknown): Error {
  const err = new Error(`${what}: ${reason}`, cause === undefined ? undefined : { cause });
  return Object.assign(err, { reason, code: `ERR_OSSL_${reason.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}` });
}

/**
 * A node:crypto failure as sslError, with OpenSSL's reason taken from its message (Deno does not
 * always word it like OpenSSL: `fallback` then, e.g. `bad decrypt` for an encrypted key).
 */
function cryptoError(what: string, e: unknown, fallback?: string): Error {
  const message = e instanceof Error ? e.message : String(e);
  const reason = OPENSSL_ERROR.exec(message)?.[1]?.trim() ?? fallback;
  return reason ? sslError(what, reason, e) : new Error(`${what}: ${message}`, { cause: e });
}

/**
 * Whether DER is an EncryptedPrivateKeyInfo: SEQUENCE { SEQUENCE (algorithm), OCTET STRING }, where
 * every unencrypted form (PKCS#8, PKCS#1, SEC1) starts with SEQUENCE { INTEGER (version), … }.
 */
function isEncryptedDer(der: Uint8Array): boolean {
  if (der.length < 4 || der[0] !== 0x30) return false;
  const lenByte = der[1]!;
  const offset = lenByte < 0x80 ? 2 : 2 + (lenByte & 0x7f);
  return der[offset] === 0x30;
}

/** The first private-key block of a PEM text (an `EC PARAMETERS` block before it is skipped). */
const PRIVATE_KEY_BLOCK =
  /-----BEGIN ((?:ENCRYPTED |RSA |EC |DSA )?PRIVATE KEY)-----[\s\S]*?-----END \1-----/;

/** Parses (and decrypts) a private key; a wrong or missing passphrase throws `bad decrypt`. */
function loadKey(
  key: string | Uint8Array,
  passphrase: string | undefined,
): { key: KeyObject; pem: string | null } {
  const pass = passphrase ?? ''; // libpq without sslpassword: an empty one, so "bad decrypt"
  if (typeof key === 'string') {
    const block = PRIVATE_KEY_BLOCK.exec(key);
    const text = block?.[0] ?? key;
    const encrypted = block?.[1] === 'ENCRYPTED PRIVATE KEY' || /Proc-Type:\s*4,ENCRYPTED/.test(text);
    try {
      const k = createPrivateKey({ key: text, format: 'pem', ...(encrypted ? { passphrase: pass } : {}) });
      // An unencrypted key goes to node:tls as given; a decrypted one as unencrypted PKCS#8 PEM.
      return { key: k, pem: encrypted ? null : key };
    } catch (e) {
      throw cryptoError('could not load private key', e, encrypted ? 'bad decrypt' : undefined);
    }
  }
  const der = toBuffer(key);
  if (isEncryptedDer(der)) {
    try {
      return {
        key: createPrivateKey({ key: der, format: 'der', type: 'pkcs8', passphrase: pass }),
        pem: null,
      };
    } catch (e) {
      throw cryptoError('could not load private key', e, 'bad decrypt');
    }
  }
  let firstError: unknown;
  for (const type of ['pkcs8', 'pkcs1', 'sec1'] as const) {
    try {
      return { key: createPrivateKey({ key: der, format: 'der', type }), pem: null };
    } catch (e) {
      firstError ??= e;
    }
  }
  throw cryptoError('could not load private key', firstError);
}

type KeyPair = { cert?: string; key: string };

/**
 * The last pair loaded and what it gave: a server loads the same one on every handshake, and parsing
 * the key and checking it against the certificate costs ~0.6 ms on Deno each time (createPrivateKey
 * ~0.3 ms, checkPrivateKey ~0.3 ms). Inputs are compared as given (strings by value, bytes by
 * identity); a failure is not kept, so it is thrown again on every call.
 */
let lastPair: {
  cert: string | Uint8Array | undefined;
  key: string | Uint8Array;
  passphrase: string | undefined;
  pair: Readonly<KeyPair>;
} | null = null;

/** loadPair's answer, from lastPair when the inputs are the same. */
function keyPair(
  cert: string | Uint8Array | undefined,
  key: string | Uint8Array,
  passphrase: string | undefined,
): Readonly<KeyPair> {
  const l = lastPair;
  if (l && l.cert === cert && l.key === key && l.passphrase === passphrase) return l.pair;
  const pair = loadPair(cert, key, passphrase);
  lastPair = { cert, key, passphrase, pair };
  return pair;
}

/**
 * The certificate and key for node:tls: the key loaded (and decrypted) by loadKey, and checked against
 * the certificate (libpq's SSL_CTX_check_private_key: `key values mismatch`).
 */
function loadPair(
  cert: string | Uint8Array | undefined,
  key: string | Uint8Array,
  passphrase: string | undefined,
): KeyPair {
  const loaded = loadKey(key, passphrase);
  const pem = loaded.pem ?? (loaded.key.export({ format: 'pem', type: 'pkcs8' }) as string);
  if (cert === undefined) return { key: pem };
  let leaf: X509Certificate;
  try {
    // A PEM chain: the first certificate is the one the key belongs to.
    leaf = new X509Certificate(typeof cert === 'string' ? cert : toBuffer(cert));
  } catch (e) {
    throw cryptoError('could not load certificate', e);
  }
  let matches: boolean;
  try {
    matches = leaf.checkPrivateKey(loaded.key);
  } catch (e) {
    throw cryptoError('certificate does not match private key', e);
  }
  if (!matches) throw sslError('certificate does not match private key', 'key values mismatch');
  return { cert: typeof cert === 'string' ? cert : leaf.toString(), key: pem };
}

const BELOW_1_2: ReadonlySet<TlsVersion> = new Set(['TLSv1', 'TLSv1.1']);

function versions(o: { minVersion?: TlsVersion; maxVersion?: TlsVersion }, setting: string) {
  if (o.maxVersion && BELOW_1_2.has(o.maxVersion)) {
    throw new UnsupportedError(
      `${setting}=${o.maxVersion} is not supported on Deno: its TLS (rustls) implements only TLSv1.2 and TLSv1.3`,
    );
  }
  const out: { minVersion?: tls.SecureVersion; maxVersion?: tls.SecureVersion } = {};
  if (o.minVersion && !BELOW_1_2.has(o.minVersion)) out.minVersion = o.minVersion;
  if (o.maxVersion) out.maxVersion = o.maxVersion;
  return out;
}

function systemRoots(): string[] {
  const get = (tls as { getCACertificates?: (kind: string) => string[] }).getCACertificates;
  if (!get) {
    throw new UnsupportedError(
      "sslrootcert=system is not supported on this Deno: node:tls has no getCACertificates('system')",
    );
  }
  return get('system');
}

/** node:tls client options; throws UnsupportedError for what Deno cannot honour. */
export function tlsConnectOptions(o: TlsClientOptions): tls.ConnectionOptions {
  if (o.crl?.length) {
    throw new UnsupportedError(
      'certificate revocation lists (sslcrl, sslcrldir) are not supported on Deno: its node:tls ignores CRLs, so a revoked server certificate would be accepted',
    );
  }
  const opts: tls.ConnectionOptions = {
    ALPNProtocols: o.alpnProtocols,
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
    ...versions(o, 'ssl_max_protocol_version'),
  };
  if (o.servername !== undefined) opts.servername = o.servername;
  // node:tls `ca` replaces the default roots (libpq's sslrootcert); Deno.startTls' caCerts would add to them.
  if (o.useSystemCa) opts.ca = systemRoots();
  else if (o.ca) opts.ca = o.ca;
  // The key goes to node:tls decrypted (no passphrase): see the top of this file.
  if (o.key !== undefined) Object.assign(opts, keyPair(o.cert, o.key, o.passphrase));
  else if (o.cert !== undefined) opts.cert = certPem(o.cert);
  return opts;
}

/**
 * node:tls server options. Requesting or verifying client certificates is refused (UnsupportedError,
 * before the handshake): Deno's server verifies none (see the top of this file).
 */
export function tlsServerOptions(o: TlsServerOptions): tls.TlsOptions {
  if (o.ca?.length || o.requestCert) throw new UnsupportedError(SERVER_CLIENT_CERT_UNSUPPORTED);
  if (o.crl?.length) {
    throw new UnsupportedError(
      'certificate revocation lists on the server side (ssl_crl_file, ssl_crl_dir) are not supported on Deno: its node:tls ignores CRLs, and its server does not verify client certificates',
    );
  }
  const v = versions(o, 'ssl_max_protocol_version');
  return {
    secureContext: serverContext(keyPair(o.cert, o.key, o.passphrase), v),
    ALPNProtocols: o.alpnProtocols,
    requestCert: false,
    rejectUnauthorized: false,
    ...v,
  };
}

type Versions = ReturnType<typeof versions>;

/**
 * The server's SecureContext, built once for the last pair and versions. Given a cert and key instead,
 * Deno's TLSSocket builds one per socket, parsing the key again to check its strength: 0.47–0.74 ms
 * more per handshake (a TLSSocket cost 0.56–0.89 ms to make that way, 0.09–0.14 ms with a context).
 */
let lastServerContext: { pair: Readonly<KeyPair>; v: Versions; context: tls.SecureContext } | null = null;

function serverContext(pair: Readonly<KeyPair>, v: Versions): tls.SecureContext {
  const l = lastServerContext;
  if (l && l.pair === pair && l.v.minVersion === v.minVersion && l.v.maxVersion === v.maxVersion) {
    return l.context;
  }
  const context = tls.createSecureContext({ ...pair, ...v });
  lastServerContext = { pair, v, context };
  return context;
}

/**
 * Deno reports every chain failure of the leaf as UNABLE_TO_VERIFY_LEAF_SIGNATURE, also for an
 * expired certificate; give OpenSSL's code for the validity window (the text only: authorized stays false).
 */
function refine(error: string | undefined, der: Uint8Array | undefined): string | undefined {
  if (error !== 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || !der) return error;
  try {
    const x = new X509Certificate(toBuffer(der));
    const now = Date.now();
    if (now > Date.parse(x.validTo)) return 'CERT_HAS_EXPIRED';
    if (now < Date.parse(x.validFrom)) return 'CERT_NOT_YET_VALID';
  } catch {
    // unparsable: keep Deno's code
  }
  return error;
}

function peerDer(s: tls.TLSSocket): Uint8Array | undefined {
  const peer = s.getPeerCertificate(false);
  const raw = peer && 'raw' in peer && peer.raw ? peer.raw : undefined;
  return raw && raw.length > 0 ? new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength) : undefined;
}

function common(s: tls.TLSSocket, info: TlsInfo): TlsInfo {
  const protocol = s.getProtocol();
  if (protocol) info.protocol = protocol;
  const cipher = s.getCipher();
  if (cipher) info.cipher = cipher.standardName ?? cipher.name;
  return info;
}

/** What a client reports about the server after the handshake. */
export function tlsInfoOf(s: tls.TLSSocket): TlsInfo {
  const der = peerDer(s);
  const info: TlsInfo = { authorized: s.authorized === true, alpnProtocol: s.alpnProtocol || null };
  if (!info.authorized) {
    const why = refine(s.authorizationError ? String(s.authorizationError) : undefined, der);
    if (why) info.authorizationError = why;
  }
  if (der) info.peerCertificate = der;
  return common(s, info);
}

/**
 * What a server reports about the client. Deno's node:tls server does not verify client certificates
 * (see the top of this file), so a received certificate is never reported as authorized. (tlsServerOptions
 * never requests one; this is the second line of defence.)
 */
export function serverTlsInfo(s: tls.TLSSocket): TlsInfo {
  const der = peerDer(s);
  const info: TlsInfo = { authorized: false, alpnProtocol: s.alpnProtocol || null };
  if (der) {
    info.peerCertificate = der;
    info.authorizationError = CLIENT_CERT_UNVERIFIED;
  }
  return common(s, info);
}
