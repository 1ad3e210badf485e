import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificateNames } from '../src/client/verify.ts';
import { TlsError } from '../src/errors.ts';
import { certificateNameFields, signatureAlgorithm } from '../src/x509/certificate.ts';
import { DerError, oidText, readTlv } from '../src/x509/der.ts';
import { type OpensslDir, opensslDir } from './openssl.ts';

// Certificates come from the openssl CLI; the expected names are the ones we asked it to write.

let tmp: OpensslDir;
const der: Record<string, Uint8Array> = {};

/** A self-signed certificate with this subject and extra `req` arguments, as DER. */
function make(name: string, subj: string, extra: string[] = [], config?: string): Uint8Array {
  const args = ['req', '-x509', '-key', 'ec.key', '-sha256', '-days', '1', '-subj', subj, '-utf8'];
  if (config) {
    writeFileSync(join(tmp.dir, `${name}.cnf`), config);
    args.push('-config', `${name}.cnf`);
  }
  tmp.openssl(...args, ...extra, '-out', `${name}.pem`);
  return new Uint8Array(tmp.openssl('x509', '-in', `${name}.pem`, '-outform', 'DER'));
}

beforeAll(() => {
  tmp = opensslDir('pgconn-x509-');
  tmp.openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ec.key');
  der.sans = make('sans', '/O=pgconn/CN=db.example.test', [
    '-addext',
    'subjectAltName=DNS:db.example.test,email:x@example.test,IP:192.0.2.7,DNS:*.pool.example.test,IP:2001:db8::1,URI:https://example.test/',
    '-addext',
    'keyUsage=critical,digitalSignature',
  ]);
  der.twoCns = make('two-cns', '/CN=first.test/OU=unit/CN=second.test');
  // string_mask=pkix: PrintableString where it fits, BMPString otherwise (as old CAs wrote names).
  der.bmp = make('bmp', '/CN=münchen.test', [], '[req]\ndistinguished_name=dn\nstring_mask=pkix\n[dn]\n');
  der.utf8 = make(
    'utf8',
    '/CN=zürich.test',
    [],
    '[req]\ndistinguished_name=dn\nstring_mask=utf8only\n[dn]\n',
  );
  der.noCn = make('no-cn', '/OU=nothing');
}, 30_000);

afterAll(() => tmp?.remove());

describe('certificate names (what verify-full reads)', () => {
  it('reads dNSName and iPAddress SANs in order and skips the other GeneralName kinds', () => {
    const names = certificateNames(der.sans!);
    expect(names.altNames).toEqual([
      { kind: 'dns', name: 'db.example.test' },
      { kind: 'ip', address: Uint8Array.of(192, 0, 2, 7) },
      { kind: 'dns', name: '*.pool.example.test' },
      { kind: 'ip', address: Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1) },
    ]);
    expect(names.commonNames).toEqual(['db.example.test']);
  });

  it('keeps every common name in certificate order', () => {
    expect(certificateNames(der.twoCns!)).toEqual({
      altNames: [],
      commonNames: ['first.test', 'second.test'],
    });
  });

  it('decodes BMPString and UTF8String names', () => {
    expect(certificateNames(der.bmp!).commonNames).toEqual(['münchen.test']);
    expect(certificateNames(der.utf8!).commonNames).toEqual(['zürich.test']);
  });

  it('a subject without a CN gives no names', () => {
    expect(certificateNames(der.noCn!)).toEqual({ altNames: [], commonNames: [] });
  });

  it('a view into a larger buffer reads the same', () => {
    const padded = new Uint8Array(der.sans!.length + 7);
    padded.set(der.sans!, 3);
    expect(certificateNames(padded.subarray(3, 3 + der.sans!.length))).toEqual(certificateNames(der.sans!));
  });

  it('reads the outer signature algorithm', () => {
    expect(signatureAlgorithm(der.sans!)).toEqual({ algorithm: '1.2.840.10045.4.3.2' });
  });
});

describe('malformed DER is a typed error', () => {
  it('truncation anywhere, a trailing byte, and a damaged SAN extension', () => {
    const cert = der.sans!;
    for (let n = 0; n < cert.length; n += 7) {
      expect(() => certificateNames(cert.subarray(0, n))).toThrow(TlsError);
    }
    const trailing = new Uint8Array(cert.length + 1);
    trailing.set(cert);
    expect(() => certificateNameFields(trailing)).toThrow(DerError);
    expect(() => certificateNames(trailing)).toThrow(/could not parse server certificate/);

    // The GeneralNames SEQUENCE inside the extension claims one byte more than it holds.
    const bad = cert.slice();
    const sanOid = [0x06, 0x03, 0x55, 0x1d, 0x11];
    const at = bad.findIndex((_, i) => sanOid.every((b, j) => bad[i + j] === b));
    expect(at).toBeGreaterThan(0);
    const octets = at + sanOid.length; // OCTET STRING header, then SEQUENCE header
    expect(bad[octets]).toBe(0x04);
    expect(bad[octets + 2]).toBe(0x30);
    bad[octets + 3]! += 1;
    expect(() => certificateNames(bad)).toThrow(
      new TlsError('could not parse the subjectAltName extension of the server certificate'),
    );
  });

  it('the DER reader refuses indefinite, oversized and overlong lengths', () => {
    expect(() => readTlv(Uint8Array.of(0x30, 0x80, 0, 0), 0, 4)).toThrow(DerError);
    expect(() => readTlv(Uint8Array.of(0x30, 0x85, 1, 0, 0, 0, 0), 0, 7)).toThrow(DerError);
    expect(() => readTlv(Uint8Array.of(0x30, 0x82, 0x01, 0x00, 0), 0, 5)).toThrow(DerError);
    expect(() => readTlv(Uint8Array.of(0x30, 0x03, 0, 0), 0, 4)).toThrow(DerError);
    expect(readTlv(Uint8Array.of(0x30, 0x81, 0x02, 5, 6), 0, 5)).toEqual({ tag: 0x30, start: 3, end: 5 });
  });

  it('OIDs: arcs above 127, the joint first arcs, truncation and padding', () => {
    const oid = (...b: number[]) => oidText(Uint8Array.of(...b), { tag: 6, start: 0, end: b.length });
    expect(oid(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02)).toBe('1.2.840.10045.4.3.2');
    expect(oid(0x55, 0x1d, 0x11)).toBe('2.5.29.17');
    expect(oid(0x88, 0x37)).toBe('2.999');
    expect(() => oid(0x2a, 0x86)).toThrow(DerError);
    expect(() => oid(0x2a, 0x80, 0x01)).toThrow(DerError);
    expect(() => oid()).toThrow(DerError);
  });
});
