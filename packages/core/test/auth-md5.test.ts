import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { verifyCleartextPassword } from '../src/auth/cleartext.ts';
import { constantTimeEqual } from '../src/auth/constant-time.ts';
import { md5PasswordResponse, md5Verifier, verifyMd5Response } from '../src/auth/md5.ts';
import { formatScramVerifier, scramVerifier } from '../src/auth/scram.ts';
import { fcParams } from './fc.ts';

const SALT = Uint8Array.of(0x01, 0x02, 0x03, 0x04);

describe('MD5 password authentication', () => {
  it('matches libpq for postgres/postgres with salt 01020304', () => {
    // inner=$(printf 'postgrespostgres' | openssl md5 -r | cut -c1-32)        → 3175bce1…3f9d
    // { printf '%s' "$inner"; printf '\x01\x02\x03\x04'; } | openssl md5 -r   → 68be9ed0…a044
    expect(md5Verifier('postgres', 'postgres')).toBe('md53175bce1d3201d16594cebf9d7eb3f9d');
    expect(md5PasswordResponse('postgres', 'postgres', SALT)).toBe('md568be9ed08db75f318087ab337aaea044');
  });

  it('hashes password then user (not user then password)', () => {
    expect(md5Verifier('a', 'b')).not.toBe(md5Verifier('b', 'a'));
    expect(md5Verifier('alice', 'secret')).toBe(md5Verifier('lice', 'secreta')); // both hash "secretalice"
  });

  it('server-side verification accepts the right response and rejects others', () => {
    const stored = md5Verifier('postgres', 'postgres');
    expect(verifyMd5Response(stored, SALT, 'md568be9ed08db75f318087ab337aaea044')).toBe(true);
    expect(verifyMd5Response(stored, SALT, 'md568be9ed08db75f318087ab337aaea045')).toBe(false);
    expect(verifyMd5Response(stored, Uint8Array.of(1, 2, 3, 5), 'md568be9ed08db75f318087ab337aaea044')).toBe(
      false,
    );
    expect(verifyMd5Response(stored, SALT, '')).toBe(false);
    expect(verifyMd5Response(stored, SALT, 'md568be9ed08db75f318087ab337aaea04')).toBe(false);
  });

  it('a stored secret that is not an MD5 hash never verifies', () => {
    const response = md5PasswordResponse('u', 'p', SALT);
    expect(verifyMd5Response('p', SALT, response)).toBe(false);
    expect(verifyMd5Response('md5XYZ', SALT, response)).toBe(false);
    expect(verifyMd5Response('SCRAM-SHA-256$4096:abc=$def:ghi', SALT, response)).toBe(false);
  });

  it('round-trips for arbitrary users, passwords and salts', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.uint8Array({ minLength: 4, maxLength: 4 }), (u, p, salt) => {
        const response = md5PasswordResponse(u, p, salt);
        expect(response).toMatch(/^md5[0-9a-f]{32}$/);
        expect(verifyMd5Response(md5Verifier(u, p), salt, response)).toBe(true);
      }),
      fcParams(100),
    );
  });
});

describe('constantTimeEqual', () => {
  it('compares contents and lengths', () => {
    expect(constantTimeEqual(new Uint8Array(0), new Uint8Array(0))).toBe(true);
    expect(constantTimeEqual(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 3))).toBe(true);
    expect(constantTimeEqual(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 4))).toBe(false);
    expect(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 0))).toBe(false);
    expect(constantTimeEqual(Uint8Array.of(1, 2, 0), Uint8Array.of(1, 2))).toBe(false);
    expect(constantTimeEqual(new Uint8Array(0), Uint8Array.of(0))).toBe(false);
  });

  it('agrees with a naive comparison', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 8 }), (a, b) => {
        const naive = a.length === b.length && a.every((x, i) => x === b[i]);
        expect(constantTimeEqual(a, b)).toBe(naive);
        expect(constantTimeEqual(a, a.slice())).toBe(true);
      }),
      fcParams(),
    );
  });
});

describe('verifyCleartextPassword', () => {
  it('checks MD5 and SCRAM secrets, never plaintext', async () => {
    expect(await verifyCleartextPassword(md5Verifier('bob', 'pw'), 'bob', 'pw')).toBe(true);
    expect(await verifyCleartextPassword(md5Verifier('bob', 'pw'), 'bob', 'pw2')).toBe(false);
    expect(await verifyCleartextPassword(md5Verifier('bob', 'pw'), 'alice', 'pw')).toBe(false);
    const scram = formatScramVerifier(await scramVerifier('pw', { iterations: 16 }));
    expect(await verifyCleartextPassword(scram, 'bob', 'pw')).toBe(true);
    expect(await verifyCleartextPassword(scram, 'bob', 'pW')).toBe(false);
    expect(await verifyCleartextPassword('pw', 'bob', 'pw')).toBe(false);
  });
});
