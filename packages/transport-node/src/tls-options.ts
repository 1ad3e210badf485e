/**
 * Maps the core's TlsClientOptions onto node:tls and reads back TlsInfo. Node must not make security
 * decisions here: chain errors are reported (authorized/authorizationError) rather than thrown, and
 * Node's own host-name check is disabled because the core applies libpq's rules.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import type { TlsClientOptions, TlsInfo } from '@pgconn/core';

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
  if (o.crl?.length) opts.crl = o.crl;
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
