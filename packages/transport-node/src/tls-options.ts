/**
 * Maps the core's TlsClientOptions onto node:tls and reads back TlsInfo. Node must not make security
 * decisions here: chain errors are reported (authorized/authorizationError) rather than thrown, and
 * Node's own host-name check is disabled because the core applies libpq's rules.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
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

export function tlsConnectOptions(o: TlsClientOptions): tls.ConnectionOptions {
  const opts: tls.ConnectionOptions = {
    ALPNProtocols: o.alpnProtocols,
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
  };
  if (o.servername !== undefined) opts.servername = o.servername;
  if (o.useSystemCa) opts.ca = systemRoots();
  else if (o.ca) opts.ca = o.ca;
  if (o.cert !== undefined) opts.cert = certPem(o.cert);
  if (o.key !== undefined) opts.key = keyPem(o.key, o.passphrase);
  if (o.passphrase !== undefined) opts.passphrase = o.passphrase;
  // Node's `crl` parses one CRL per entry; a file such as root+server.crl holds several (libpq loads all).
  if (o.crl?.length) opts.crl = o.crl.flatMap(splitCrls);
  if (o.minVersion) opts.minVersion = o.minVersion;
  if (o.maxVersion) opts.maxVersion = o.maxVersion;
  return opts;
}

export function tlsServerOptions(o: TlsServerOptions): tls.TlsOptions {
  const opts: tls.TlsOptions = {
    cert: certPem(o.cert),
    key: keyPem(o.key, o.passphrase),
    ALPNProtocols: o.alpnProtocols,
    // The core decides what an unverified client certificate means (cert auth fails, trust passes).
    requestCert: o.requestCert ?? false,
    rejectUnauthorized: false,
  };
  if (o.passphrase !== undefined) opts.passphrase = o.passphrase;
  if (o.ca) opts.ca = o.ca;
  if (o.crl?.length) opts.crl = o.crl.flatMap(splitCrls);
  if (o.minVersion) opts.minVersion = o.minVersion;
  if (o.maxVersion) opts.maxVersion = o.maxVersion;
  return opts;
}

export function tlsInfoOf(s: tls.TLSSocket): TlsInfo {
  const peer = s.getPeerCertificate(false);
  const raw = peer && 'raw' in peer && peer.raw ? peer.raw : undefined;
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
