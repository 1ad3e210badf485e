/**
 * The capability decisions of the Deno transport that need no Deno to check (this file runs on Node):
 * what tlsConnectOptions and tlsServerOptions refuse with an UnsupportedError, what they pass to
 * node:tls (keys decrypted here: a wrong passphrase fails; the server's key pair checked and its one
 * SecureContext reused only for the same inputs), what the server side reports for a client
 * certificate, and that the core keeps a transport's
 * UnsupportedError typed instead of turning it into a TLS failure that sslmode=prefer would retry in
 * plaintext.
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { ClientHandshake, type TlsClientOptions, UnsupportedError } from '@pgconn/core';
import { type CertSet, createCertSet } from '@pgconn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLIENT_CERT_UNVERIFIED,
  SERVER_CLIENT_CERT_UNSUPPORTED,
  serverTlsInfo,
  tlsConnectOptions,
  tlsServerOptions,
} from '../src/tls-options.ts';

const base: TlsClientOptions = { alpnProtocols: ['postgresql'], servername: 'db.example' };

describe('tlsConnectOptions', () => {
  it('maps the core options onto node:tls without any verification decision of its own', () => {
    const o = tlsConnectOptions({ ...base, ca: ['CA'], minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3' });
    expect(o).toMatchObject({
      ALPNProtocols: ['postgresql'],
      servername: 'db.example',
      ca: ['CA'],
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.3',
    });
    expect(o.checkServerIdentity?.('x', {} as never)).toBeUndefined();
  });

  it('refuses CRLs (Deno ignores them: a revoked certificate would verify)', () => {
    expect(() => tlsConnectOptions({ ...base, crl: ['-----BEGIN X509 CRL-----'] })).toThrow(UnsupportedError);
    expect(() => tlsConnectOptions({ ...base, crl: ['x'] })).toThrow(/certificate revocation lists/);
  });

  it('refuses a maximum below TLSv1.2, and drops a minimum below it (1.2 is stricter)', () => {
    expect(() => tlsConnectOptions({ ...base, maxVersion: 'TLSv1.1' })).toThrow(UnsupportedError);
    const o = tlsConnectOptions({ ...base, minVersion: 'TLSv1' });
    expect(o.minVersion).toBeUndefined();
  });
});

describe('private keys', () => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const encrypted = privateKey.export({
    type: 'pkcs8',
    format: 'pem',
    cipher: 'aes-128-cbc',
    passphrase: 'right',
  }) as string;
  const encryptedDer = privateKey.export({
    type: 'pkcs8',
    format: 'der',
    cipher: 'aes-128-cbc',
    passphrase: 'right',
  });

  it('hands an encrypted key to node:tls decrypted (unencrypted PKCS#8 PEM, no passphrase)', () => {
    for (const key of [encrypted, new Uint8Array(encryptedDer)]) {
      const o = tlsConnectOptions({ ...base, key, passphrase: 'right' });
      expect(o.passphrase).toBeUndefined();
      expect(String(o.key)).toMatch(/^-----BEGIN PRIVATE KEY-----/);
      const pkcs8 = (k: string) =>
        createPrivateKey(k).export({ type: 'pkcs8', format: 'der' }).toString('hex');
      expect(pkcs8(String(o.key))).toBe(pkcs8(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string));
    }
  });

  /** What OpenSSL reports for a key that decrypted to garbage (ASN.1 and decoder errors). */
  const GARBAGE_PARSE_REASONS = [
    'unsupported',
    'wrong tag',
    'header too long',
    'too long',
    'nested asn1 error',
  ];

  it('fails to load the key for a wrong or missing passphrase (OpenSSL: bad decrypt, as libpq)', () => {
    for (const key of [encrypted, new Uint8Array(encryptedDer)]) {
      // Loaded with the right one first: the last pair loaded is kept, and must not answer for another passphrase.
      expect(tlsConnectOptions({ ...base, key, passphrase: 'right' }).key).toMatch(
        /^-----BEGIN PRIVATE KEY-----/,
      );
      for (const passphrase of ['wrong', undefined]) {
        let error: unknown;
        try {
          tlsConnectOptions({ ...base, key, ...(passphrase === undefined ? {} : { passphrase }) });
        } catch (e) {
          error = e;
        }
        // CBC padding catches a wrong passphrase 255 times in 256; otherwise OpenSSL decrypts to garbage
        // and fails parsing it with an ASN.1 decoder's reason, as libpq would ('unsupported' and
        // 'wrong tag' seen so far). The key and salt are random per run.
        expect(['bad decrypt', ...GARBAGE_PARSE_REASONS]).toContain((error as { reason?: string }).reason);
        expect(String(error)).toMatch(/could not load private key/);
      }
    }
  });
});

describe('tlsServerOptions', () => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const key = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

  it("refuses to request or verify client certificates (Deno's server verifies none)", () => {
    for (const extra of [{ ca: ['CA'] }, { requestCert: true }]) {
      expect(() => tlsServerOptions({ cert: 'x', key, alpnProtocols: ['postgresql'], ...extra })).toThrow(
        new UnsupportedError(SERVER_CLIENT_CERT_UNSUPPORTED),
      );
    }
    expect(() => tlsServerOptions({ cert: 'x', key, alpnProtocols: [], crl: ['x'] })).toThrow(
      UnsupportedError,
    );
  });
});

describe('tlsServerOptions: certificate and key', () => {
  // Two server certificates with keys of their own, from the shared test PKI.
  let certs: CertSet;
  let a: { cert: string; key: string };
  let b: { cert: string; key: string };
  beforeAll(async () => {
    certs = await createCertSet();
    a = { cert: certs.server.localhost.certPem, key: certs.server.localhost.keyPem };
    b = { cert: certs.server.cnOnly.certPem, key: certs.server.cnOnly.keyPem };
  }, 30_000);
  afterAll(async () => {
    await certs?.remove();
  });
  const server = (cert: string, key: string) =>
    tlsServerOptions({ cert, key, alpnProtocols: ['postgresql'] });

  it('checks that they belong together on every call, also right after a matching pair loaded', () => {
    const context = server(a.cert, a.key).secureContext;
    expect(context).toBeDefined();
    expect(() => server(b.cert, a.key)).toThrow(/certificate does not match private key/);
    // The same pair again: the same SecureContext (Deno would otherwise build one per socket).
    expect(server(a.cert, a.key).secureContext).toBe(context);
    expect(() => server(a.cert, b.key)).toThrow(/certificate does not match private key/);
    const other = server(b.cert, b.key).secureContext;
    expect(other).toBeDefined();
    expect(other).not.toBe(context);
  });

  it('a different TLS version range gets its own context', () => {
    const v12 = tlsServerOptions({ cert: a.cert, key: a.key, alpnProtocols: [], maxVersion: 'TLSv1.2' });
    const v13 = tlsServerOptions({ cert: a.cert, key: a.key, alpnProtocols: [], minVersion: 'TLSv1.3' });
    expect(v12.secureContext).not.toBe(v13.secureContext);
    expect(v13).toMatchObject({ minVersion: 'TLSv1.3' });
  });
});

describe('serverTlsInfo', () => {
  it('never reports a client certificate as verified, and says why', () => {
    const raw = Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]);
    const fake = {
      authorized: true, // whatever Deno claims: it verifies nothing on the server side
      alpnProtocol: 'postgresql',
      getPeerCertificate: () => ({ raw }),
      getProtocol: () => 'TLSv1.3',
      getCipher: () => ({ name: 'TLS_AES_128_GCM_SHA256', standardName: 'TLS_AES_128_GCM_SHA256' }),
    };
    const info = serverTlsInfo(fake as never);
    expect(info).toMatchObject({
      authorized: false,
      authorizationError: CLIENT_CERT_UNVERIFIED,
      alpnProtocol: 'postgresql',
      protocol: 'TLSv1.3',
    });
    expect([...info.peerCertificate!]).toEqual([...raw]);
  });
});

describe('core: an UnsupportedError from startTls', () => {
  it('ends the attempt with that error (no TlsError, no plaintext retry under sslmode=prefer)', async () => {
    const hs = new ClientHandshake({ host: 'localhost', user: 'alice', database: 'db', sslmode: 'prefer' });
    hs.start();
    await hs.handle({ type: 'connected' });
    const upgrade = await hs.handle({ type: 'data', bytes: Uint8Array.of(0x53) });
    expect(upgrade[0]?.type).toBe('startTls');
    const error = new UnsupportedError('certificate revocation lists are not supported');
    const actions = await hs.handle({ type: 'tlsFailed', error });
    expect(actions).toEqual([{ type: 'fail', error }]);
  });
});
