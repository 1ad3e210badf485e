/**
 * Maps the core's TlsClientOptions onto node:tls and reads back TlsInfo. Node must not make security
 * decisions here: chain errors are reported (authorized/authorizationError) rather than thrown, and
 * Node's own host-name check is disabled because the core applies libpq's rules.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import type { TlsClientOptions, TlsInfo, TlsServerOptions } from '@pgconn/core';

const toBuffer = (v: Uint8Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

/** Node's TLS takes PEM only; libpq also accepts DER (tried after PEM), so convert DER here. */
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

const CRL_BLOCK = /-----BEGIN X509 CRL-----[\s\S]*?-----END X509 CRL-----/g;

/** The CRLs of a PEM text, one string each (the text as is when it holds none, so Node reports it). */
function splitCrls(pem: string): string[] {
  const blocks = pem.match(CRL_BLOCK);
  return blocks && blocks.length > 0 ? blocks.map((b) => `${b}\n`) : [pem];
}

function systemRoots(): string[] {
  const get = (tls as { getCACertificates?: (kind: string) => string[] }).getCACertificates;
  return get ? get('system') : [...tls.rootCertificates];
}

/**
 * SecureContexts by what goes into them (certificates, key, CAs, CRLs, versions: the file contents, so a
 * changed file makes a new one). Building one parses all of that and costs a busy 2-core machine about a
 * millisecond on the client (with a CA) and 5 ms on the server; connections with equal inputs share it,
 * as tls.Server shares its own. ALPN, SNI and client-certificate requests are per socket.
 */
const contexts = new Map<string, tls.SecureContext>();

function sharedContext(inputs: string, build: () => tls.SecureContextOptions): tls.SecureContext {
  // Keyed by a digest, so the cache holds no private key or passphrase text of its own.
  const id = createHash('sha256').update(inputs).digest('base64');
  let ctx = contexts.get(id);
  if (ctx)
    contexts.delete(id); // re-inserted below: least recently used goes first
  else {
    ctx = tls.createSecureContext(build());
    if (contexts.size >= 16) contexts.delete(contexts.keys().next().value!);
  }
  contexts.set(id, ctx);
  return ctx;
}

export function tlsConnectOptions(o: TlsClientOptions): tls.ConnectionOptions {
  const cert = o.cert === undefined ? undefined : certPem(o.cert);
  const key = o.key === undefined ? undefined : keyPem(o.key, o.passphrase);
  // The system store is named rather than spelled out: it is ~200 KB of PEM.
  const ca = o.useSystemCa ? 'system' : o.ca;
  const inputs = JSON.stringify(['client', ca, cert, key, o.passphrase, o.crl, o.minVersion, o.maxVersion]);
  const secureContext = sharedContext(inputs, () => {
    const c: tls.SecureContextOptions = {};
    if (o.useSystemCa) c.ca = systemRoots();
    else if (o.ca) c.ca = o.ca;
    if (cert !== undefined) c.cert = cert;
    if (key !== undefined) c.key = key;
    if (o.passphrase !== undefined) c.passphrase = o.passphrase;
    // Node's `crl` parses one CRL per entry; a file such as root+server.crl holds several (libpq loads all).
    if (o.crl?.length) c.crl = o.crl.flatMap(splitCrls);
    if (o.minVersion) c.minVersion = o.minVersion;
    if (o.maxVersion) c.maxVersion = o.maxVersion;
    return c;
  });
  const opts: tls.ConnectionOptions = {
    secureContext,
    ALPNProtocols: o.alpnProtocols,
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
  };
  if (o.servername !== undefined) opts.servername = o.servername;
  return opts;
}

export function tlsServerOptions(o: TlsServerOptions): tls.TlsOptions {
  const cert = certPem(o.cert);
  const key = keyPem(o.key, o.passphrase);
  const inputs = JSON.stringify(['server', cert, key, o.passphrase, o.ca, o.crl, o.minVersion, o.maxVersion]);
  const secureContext = sharedContext(inputs, () => {
    const c: tls.SecureContextOptions = { cert, key };
    if (o.passphrase !== undefined) c.passphrase = o.passphrase;
    if (o.ca) c.ca = o.ca;
    if (o.crl?.length) c.crl = o.crl.flatMap(splitCrls);
    if (o.minVersion) c.minVersion = o.minVersion;
    if (o.maxVersion) c.maxVersion = o.maxVersion;
    return c;
  });
  return {
    secureContext,
    ALPNProtocols: o.alpnProtocols,
    // The core decides what an unverified client certificate means (cert auth fails, trust passes).
    requestCert: o.requestCert ?? false,
    rejectUnauthorized: false,
  };
}

export function tlsInfoOf(s: tls.TLSSocket): TlsInfo {
  // getPeerX509Certificate() decodes nothing until asked; getPeerCertificate() builds a whole object.
  const raw = s.getPeerX509Certificate()?.raw;
  const info: TlsInfo = {
    authorized: s.authorized,
    alpnProtocol: s.alpnProtocol || null,
  };
  if (!s.authorized && s.authorizationError) info.authorizationError = String(s.authorizationError);
  if (raw) info.peerCertificate = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  const protocol = s.getProtocol();
  if (protocol) info.protocol = protocol;
  const cipher = s.getCipher();
  if (cipher) info.cipher = cipher.standardName ?? cipher.name;
  return info;
}
