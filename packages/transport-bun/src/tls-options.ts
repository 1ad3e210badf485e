/**
 * Maps the core's TLS options onto Bun's native (BoringSSL) TLS options and reads back TlsInfo. As on
 * Node, nothing here makes a security decision: chain errors are reported, never thrown, and the core
 * applies libpq's sslmode and host-name rules.
 *
 * Two Bun specifics, measured on Bun 1.4.5:
 * - ALPN must be given in wire format (`\x0apostgresql`); a plain string array is silently ignored.
 * - The native client always checks the peer's name (SNI name, else the address) after the chain: a
 *   chain that verified but does not name that host is reported as ERR_TLS_CERT_ALTNAME_INVALID with
 *   `authorized === false`. Chain errors take precedence (a bad chain is always reported as such), so
 *   that code means "chain verified, name not checked by us": we report authorized and let the core
 *   apply libpq's host-name rules (verify-ca must accept a certificate that names another host).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import type { TlsClientOptions, TlsInfo, TlsServerOptions, TlsVersion } from '@pgconn/core';

const toBuffer = (v: Uint8Array): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

/** ALPN protocol list in TLS wire format: each name prefixed by its length. */
export function alpnWire(protocols: readonly string[]): Uint8Array {
  const names = protocols.map((p) => new TextEncoder().encode(p));
  const out = new Uint8Array(names.reduce((n, p) => n + 1 + p.length, 0));
  let at = 0;
  for (const p of names) {
    if (p.length === 0 || p.length > 255)
      throw new RangeError(`invalid ALPN protocol name length ${p.length}`);
    out[at++] = p.length;
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const VERSIONS: Record<TlsVersion, number> = {
  TLSv1: 0x0301,
  'TLSv1.1': 0x0302,
  'TLSv1.2': 0x0303,
  'TLSv1.3': 0x0304,
};

/** Bun's native TLS accepts PEM only; libpq also accepts DER, so convert (node:crypto works in Bun). */
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
  throw tlsError(firstError as Error);
}

const CRL_BLOCK = /-----BEGIN X509 CRL-----[\s\S]*?-----END X509 CRL-----/g;

/** One CRL per entry: a file such as root+server.crl holds several (libpq loads all). */
function splitCrls(pem: string): string[] {
  const blocks = pem.match(CRL_BLOCK);
  return blocks && blocks.length > 0 ? blocks.map((b) => `${b}\n`) : [pem];
}

/** The system trust store, as the Node transport uses it (sslrootcert=system). */
function systemRoots(): string[] {
  const get = (tls as { getCACertificates?: (kind: string) => string[] }).getCACertificates;
  return get ? get('system') : [...tls.rootCertificates];
}

export function nativeClientTls(o: TlsClientOptions): BunNative.TLSOptions {
  const t: BunNative.TLSOptions = {
    ALPNProtocols: alpnWire(o.alpnProtocols),
    rejectUnauthorized: false,
  };
  if (o.servername !== undefined) t.serverName = o.servername;
  if (o.useSystemCa) t.ca = systemRoots();
  else if (o.ca) t.ca = o.ca;
  if (o.cert !== undefined) t.cert = certPem(o.cert);
  if (o.key !== undefined) t.key = keyPem(o.key, o.passphrase);
  if (o.passphrase !== undefined) t.passphrase = o.passphrase;
  if (o.crl?.length) t.crl = o.crl.flatMap(splitCrls);
  if (o.minVersion) t.minVersion = VERSIONS[o.minVersion];
  if (o.maxVersion) t.maxVersion = VERSIONS[o.maxVersion];
  return t;
}

export function nativeServerTls(o: TlsServerOptions): BunNative.TLSOptions {
  const t: BunNative.TLSOptions = {
    cert: certPem(o.cert),
    key: keyPem(o.key, o.passphrase),
    ALPNProtocols: alpnWire(o.alpnProtocols),
    // The core decides what an unverified client certificate means (cert auth fails, trust passes).
    requestCert: o.requestCert ?? false,
    rejectUnauthorized: false,
  };
  if (o.passphrase !== undefined) t.passphrase = o.passphrase;
  if (o.ca) t.ca = o.ca;
  if (o.crl?.length) t.crl = o.crl.flatMap(splitCrls);
  if (o.minVersion) t.minVersion = VERSIONS[o.minVersion];
  if (o.maxVersion) t.maxVersion = VERSIONS[o.maxVersion];
  return t;
}

/** node:tls options for the one server path native Bun cannot take (see socket.ts, direct TLS). */
export function nodeServerTls(o: TlsServerOptions): tls.TlsOptions {
  const opts: tls.TlsOptions = {
    cert: certPem(o.cert),
    key: keyPem(o.key, o.passphrase),
    ALPNProtocols: o.alpnProtocols,
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

/**
 * Bun reports OpenSSL failures as `error:<hex>:<library>:OPENSSL_internal:<REASON>` (BoringSSL names);
 * the core prints OpenSSL's reason string as libpq does (`tlsv1 alert protocol version`, `bad decrypt`).
 * BoringSSL's reason codes are OpenSSL's reason strings upper-cased with underscores.
 */
export function tlsError(e: unknown): Error {
  const err = e instanceof Error ? e : new Error(String(e));
  const existing = (err as { reason?: unknown }).reason;
  let reason: string | undefined;
  if (typeof existing === 'string' && existing !== '') reason = existing;
  else reason = /^error:[0-9a-f]+:[^:]*:[^:]*:([A-Z0-9_]+)$/i.exec(err.message)?.[1];
  if (reason && /^[A-Z0-9_]+$/.test(reason)) reason = reason.toLowerCase().replace(/_/g, ' ');
  if (reason) Object.defineProperty(err, 'reason', { value: reason, configurable: true, writable: true });
  return err;
}

/** Codes of a handshake that did not complete (as opposed to a certificate verification result). */
export function isHandshakeFailure(e: { code?: string; message?: string }): boolean {
  return /^E[A-Z]+$/.test(e.code ?? '') || /^error:[0-9a-f]+:/i.test(e.message ?? '');
}

/** TlsInfo of a native TLS socket after its handshake callback reported `error` (null: verified). */
export function nativeTlsInfo(
  s: BunNative.Socket,
  error: { code?: string; message?: string } | null,
): TlsInfo {
  const code = error ? (error.code ?? error.message ?? 'UNKNOWN') : undefined;
  const authorized = code === undefined || code === 'ERR_TLS_CERT_ALTNAME_INVALID';
  const info: TlsInfo = { authorized, alpnProtocol: s.alpnProtocol || null };
  if (!authorized && code) info.authorizationError = code;
  const raw = s.getPeerCertificate()?.raw;
  if (raw?.length) info.peerCertificate = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  const protocol = s.getTLSVersion();
  if (protocol) info.protocol = protocol;
  const cipher = s.getCipher();
  if (cipher) {
    const name = cipher.standardName ?? cipher.name;
    if (name) info.cipher = name;
  }
  return info;
}

export function nodeTlsInfo(s: tls.TLSSocket): TlsInfo {
  const peer = s.getPeerCertificate(false);
  const raw = peer && 'raw' in peer && peer.raw ? peer.raw : undefined;
  const info: TlsInfo = { authorized: s.authorized, alpnProtocol: s.alpnProtocol || null };
  if (!s.authorized && s.authorizationError) info.authorizationError = String(s.authorizationError);
  if (raw) info.peerCertificate = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
  const protocol = s.getProtocol();
  if (protocol) info.protocol = protocol;
  const cipher = s.getCipher();
  if (cipher) info.cipher = cipher.standardName ?? cipher.name;
  return info;
}
