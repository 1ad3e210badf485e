/**
 * Maps the core's TlsClientOptions onto node:tls and reads back TlsInfo. Node must not make security
 * decisions here: chain errors are reported (authorized/authorizationError) rather than thrown, and
 * Node's own host-name check is disabled because the core applies libpq's rules.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import type { TlsClientOptions, TlsInfo, TlsServerOptions, TlsVersion } from '@pgconn/core';

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

/** What goes into a SecureContext: PEM texts as the files held them; `ca: 'system'` the system store. */
interface ContextMaterial {
  ca?: string[] | 'system';
  cert?: string;
  key?: string;
  passphrase?: string;
  crl?: string[];
  minVersion?: TlsVersion;
  maxVersion?: TlsVersion;
}

/**
 * SecureContexts by what goes into them (the file contents, so a changed file makes a new one).
 * Building one parses all of that: ~0.4 ms per client connection with a CA (`--cpu-prof` of the
 * handshake bench) and ~5 ms on a busy server; connections with equal inputs share it, as tls.Server shares its
 * own. ALPN, SNI and client-certificate requests are per socket.
 */
const contexts = new Map<string, tls.SecureContext>();

const sameList = (a: readonly string[] | string | undefined, b: readonly string[] | string | undefined) =>
  a === b || (Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => x === b[i]));

const sameMaterial = (a: ContextMaterial, b: ContextMaterial): boolean =>
  a.cert === b.cert &&
  a.key === b.key &&
  a.passphrase === b.passphrase &&
  a.minVersion === b.minVersion &&
  a.maxVersion === b.maxVersion &&
  sameList(a.ca, b.ca) &&
  sameList(a.crl, b.crl);

/**
 * The last material asked for and its context: a server asks for the same one on every handshake, and
 * comparing the texts (0.3–1 µs) is cheaper than serialising and hashing them for the lookup (4–6 µs in
 * a loop; 2% of serve's perf samples under pgbench -C, on cold caches). Nothing else touched the LRU
 * order since, so a hit needs no bookkeeping. It keeps one set of texts (key and passphrase included)
 * alive: no more than the cached context it stands for, which holds that key decrypted.
 */
let last: { material: ContextMaterial; context: tls.SecureContext } | null = null;

function sharedContext(m: ContextMaterial): tls.SecureContext {
  if (last && sameMaterial(last.material, m)) return last.context;
  const context = contextFor(m);
  last = { material: m, context };
  return context;
}

function contextFor(m: ContextMaterial): tls.SecureContext {
  // Keyed by a digest, so the cache holds no private key or passphrase text of its own; the system
  // store goes in by name (it is ~200 KB of PEM).
  const inputs = JSON.stringify([m.ca, m.cert, m.key, m.passphrase, m.crl, m.minVersion, m.maxVersion]);
  const id = createHash('sha256').update(inputs).digest('base64');
  let ctx = contexts.get(id);
  if (ctx)
    contexts.delete(id); // re-inserted below: least recently used goes first
  else {
    const c: tls.SecureContextOptions = {};
    if (m.ca) c.ca = m.ca === 'system' ? systemRoots() : m.ca;
    if (m.cert !== undefined) c.cert = m.cert;
    if (m.key !== undefined) c.key = m.key;
    if (m.passphrase !== undefined) c.passphrase = m.passphrase;
    // Node's `crl` parses one CRL per entry; a file such as root+server.crl holds several (libpq loads all).
    if (m.crl?.length) c.crl = m.crl.flatMap(splitCrls);
    if (m.minVersion) c.minVersion = m.minVersion;
    if (m.maxVersion) c.maxVersion = m.maxVersion;
    ctx = tls.createSecureContext(c);
    if (contexts.size >= 16) contexts.delete(contexts.keys().next().value!);
  }
  contexts.set(id, ctx);
  return ctx;
}

export function tlsConnectOptions(o: TlsClientOptions): tls.ConnectionOptions {
  const secureContext = sharedContext({
    ca: o.useSystemCa ? 'system' : o.ca,
    cert: o.cert === undefined ? undefined : certPem(o.cert),
    key: o.key === undefined ? undefined : keyPem(o.key, o.passphrase),
    passphrase: o.passphrase,
    crl: o.crl,
    minVersion: o.minVersion,
    maxVersion: o.maxVersion,
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
  const secureContext = sharedContext({
    ca: o.ca,
    cert: certPem(o.cert),
    key: keyPem(o.key, o.passphrase),
    passphrase: o.passphrase,
    crl: o.crl,
    minVersion: o.minVersion,
    maxVersion: o.maxVersion,
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
