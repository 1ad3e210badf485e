/**
 * Maps the core's TLS options onto Deno's node:tls and reads back TlsInfo. Deno's node:tls runs on
 * rustls; what it cannot do is refused here with an UnsupportedError naming the capability, never
 * passed on to be ignored (README.md, "Capability matrix"):
 *
 * - CRLs: the `crl` option is accepted and ignored (a revoked certificate still verifies).
 * - TLS below 1.2: rustls has none. A lower *minimum* is harmless (1.2 is used: stricter, not weaker);
 *   a *maximum* below 1.2 cannot be honoured.
 * - Client certificates on the server side: the server never verifies them (`authorized` is always
 *   false, and with rejectUnauthorized a certificate from an unknown CA is accepted), so the server
 *   side reports every client certificate as unverified, naming the reason; the core's `cert`
 *   authentication then fails closed.
 *
 * As on Node, chain errors are reported (authorized / authorizationError) rather than thrown, and no
 * host-name check is made here: the core applies libpq's rules to the peer certificate.
 */
import { Buffer } from 'node:buffer';
import { createPrivateKey, X509Certificate } from 'node:crypto';
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

const toBuffer = (v: Uint8Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

/** node:tls takes PEM; libpq also accepts DER (tried after PEM), so convert DER here. */
function certPem(cert: string | Uint8Array): string {
  return typeof cert === 'string' ? cert : new X509Certificate(toBuffer(cert)).toString();
}

function keyPem(key: string | Uint8Array, passphrase: string | undefined): string {
  if (typeof key === 'string') return key;
  const der = toBuffer(key);
  let firstError: unknown;
  for (const type of ['pkcs8', 'pkcs1', 'sec1'] as const) {
    try {
      const k = createPrivateKey({ key: der, format: 'der', type, ...(passphrase ? { passphrase } : {}) });
      return k.export({ format: 'pem', type: 'pkcs8' }) as string;
    } catch (e) {
      firstError ??= e;
    }
  }
  throw firstError;
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
  if (o.cert !== undefined) opts.cert = certPem(o.cert);
  if (o.key !== undefined) opts.key = keyPem(o.key, o.passphrase);
  if (o.passphrase !== undefined) opts.passphrase = o.passphrase;
  return opts;
}

/** node:tls server options (the client-certificate caveat is applied in serverTlsInfo). */
export function tlsServerOptions(o: TlsServerOptions): tls.TlsOptions {
  const opts: tls.TlsOptions = {
    cert: certPem(o.cert),
    key: keyPem(o.key, o.passphrase),
    ALPNProtocols: o.alpnProtocols,
    requestCert: o.requestCert ?? false,
    rejectUnauthorized: false,
    ...versions(o, 'ssl_max_protocol_version'),
  };
  if (o.passphrase !== undefined) opts.passphrase = o.passphrase;
  if (o.ca) opts.ca = o.ca;
  return opts;
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
 * (see the top of this file), so a received certificate is never reported as authorized.
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
