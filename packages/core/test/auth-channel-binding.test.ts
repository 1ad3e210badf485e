import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificateSignatureHash, tlsServerEndPointHash } from '../src/auth/channel-binding.ts';
import { AuthError } from '../src/errors.ts';
import { type OpensslDir, opensslDir } from './openssl.ts';

// Certificates are generated with the openssl CLI, and the expected channel-binding data is computed
// with `openssl x509 -outform DER | openssl dgst -<hash> -binary`, independently of our code.

let tmp: OpensslDir;
const openssl = (...args: string[]) => tmp.openssl(...args);
const cert = (name: string, keyArgs: string[], signArgs: string[]) => tmp.cert(name, keyArgs, signArgs);

function dgst(name: string, hash: string): Uint8Array {
  return new Uint8Array(openssl('dgst', `-${hash}`, '-binary', `${name}.der`));
}

const certs: Record<string, Uint8Array> = {};

beforeAll(() => {
  tmp = opensslDir('pgconn-cb-');
  openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'rsa.key');
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ec.key');
  const rsa = ['-key', 'rsa.key'];
  const ec = ['-key', 'ec.key'];
  const pss = ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest'];
  certs.ecSha256 = cert('ec-sha256', ec, ['-sha256']);
  certs.ecSha384 = cert('ec-sha384', ec, ['-sha384']);
  certs.ecSha224 = cert('ec-sha224', ec, ['-sha224']);
  certs.ecSha3 = cert('ec-sha3-256', ec, ['-sha3-256']);
  certs.rsaSha384 = cert('rsa-sha384', rsa, ['-sha384']);
  certs.rsaSha512 = cert('rsa-sha512', rsa, ['-sha512']);
  certs.rsaSha1 = cert('rsa-sha1', rsa, ['-sha1']);
  certs.pssSha512 = cert('pss-sha512', rsa, ['-sha512', ...pss]);
  certs.pssSha256 = cert('pss-sha256', rsa, ['-sha256', ...pss]);
  certs.pssSha1 = cert('pss-sha1', rsa, ['-sha1', '-sigopt', 'rsa_padding_mode:pss']);
  openssl('genpkey', '-algorithm', 'ED25519', '-out', 'ed25519.key');
  openssl('genpkey', '-algorithm', 'ED448', '-out', 'ed448.key');
  certs.ed25519 = cert('ed25519', ['-key', 'ed25519.key'], []);
  certs.ed448 = cert('ed448', ['-key', 'ed448.key'], []);
}, 30_000);

afterAll(() => tmp?.remove());

describe('tlsServerEndPointHash (RFC 5929)', () => {
  it.each([
    ['ecSha256', 'ec-sha256', 'sha256'],
    ['ecSha384', 'ec-sha384', 'sha384'],
    ['ecSha224', 'ec-sha224', 'sha224'],
    ['ecSha3', 'ec-sha3-256', 'sha3-256'],
    ['rsaSha384', 'rsa-sha384', 'sha384'],
    ['rsaSha512', 'rsa-sha512', 'sha512'],
    ['pssSha512', 'pss-sha512', 'sha512'],
    ['pssSha256', 'pss-sha256', 'sha256'],
    // SHA-1 (and MD5) signatures are hashed with SHA-256 instead.
    ['rsaSha1', 'rsa-sha1', 'sha256'],
    // RSASSA-PSS-params without hashAlgorithm: the default SHA-1, hence SHA-256.
    ['pssSha1', 'pss-sha1', 'sha256'],
  ])('%s hashes with %s → %s', async (key, file, hash) => {
    const der = certs[key] as Uint8Array;
    expect(await tlsServerEndPointHash(der)).toEqual(dgst(file, hash));
  });

  it('reads the digest from the RSA-PSS parameters', () => {
    expect(certificateSignatureHash(certs.pssSha512 as Uint8Array)).toBe('SHA-512');
    expect(certificateSignatureHash(certs.pssSha1 as Uint8Array)).toBe('SHA-1');
  });

  it('fails for Ed25519/Ed448 (no digest), like libpq', async () => {
    for (const key of ['ed25519', 'ed448']) {
      await expect(tlsServerEndPointHash(certs[key] as Uint8Array)).rejects.toThrow(
        new AuthError('could not find digest for NID UNDEF'),
      );
    }
  });

  it('fails for an unknown signature algorithm or a malformed certificate', async () => {
    const der = (certs.ecSha256 as Uint8Array).slice();
    // ecdsa-with-SHA256 = 06 08 2A 86 48 CE 3D 04 03 02: turn both occurrences into an unknown …04 03 09.
    const oid = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    let replaced = 0;
    for (let i = 0; i + oid.length <= der.length; i++) {
      if (oid.every((x, j) => der[i + j] === x)) {
        der[i + oid.length - 1] = 0x09;
        replaced++;
      }
    }
    expect(replaced).toBe(2);
    const undetermined = new AuthError('could not determine server certificate signature algorithm');
    await expect(tlsServerEndPointHash(der)).rejects.toThrow(undetermined);
    await expect(tlsServerEndPointHash(new Uint8Array(0))).rejects.toThrow(undetermined);
    await expect(tlsServerEndPointHash(Uint8Array.of(0x30, 0x03, 0x02, 0x01, 0x00))).rejects.toThrow(
      undetermined,
    );
    await expect(tlsServerEndPointHash((certs.ecSha256 as Uint8Array).subarray(0, 100))).rejects.toThrow(
      AuthError,
    );
  });

  it('accepts a view into a larger buffer', async () => {
    const der = certs.ecSha384 as Uint8Array;
    const padded = new Uint8Array(der.length + 10);
    padded.set(der, 5);
    expect(await tlsServerEndPointHash(padded.subarray(5, 5 + der.length))).toEqual(
      dgst('ec-sha384', 'sha384'),
    );
  });
});
