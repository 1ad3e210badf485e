import { afterEach, describe, expect, it } from 'vitest';
import { ScramClient, ScramServer, type ScramVerifier, scramVerifier } from '../src/auth/scram.ts';
import { defaultScramKeyCache, ScramKeyCache } from '../src/auth/scram-key-cache.ts';
import { AuthError } from '../src/errors.ts';

const enc = new TextEncoder();
const ITER = 16;
const SALT_A = Uint8Array.from({ length: 16 }, (_, i) => i);
const SALT_B = Uint8Array.from({ length: 16 }, (_, i) => 100 + i);

/** One full exchange; the client uses `keyCache` (undefined: the default). */
async function exchange(password: string, verifier: ScramVerifier, keyCache?: ScramKeyCache | null) {
  const client = new ScramClient({
    password,
    mechanism: 'SCRAM-SHA-256',
    ...(keyCache !== undefined ? { keyCache } : {}),
  });
  const server = new ScramServer({ verifier, mechanism: 'SCRAM-SHA-256', channelBinding: null });
  const serverFirst = server.handleClientFirst(client.clientFirstMessage());
  const clientFinal = await client.handleServerFirst(serverFirst);
  const serverFinal = await server.handleClientFinal(clientFinal);
  await client.handleServerFinal(serverFinal);
}

/**
 * Counts PBKDF2 derivations (WebCrypto deriveBits) made while `f` runs: an own property shadows the
 * prototype's method for that long (by hand, not vi.spyOn: these tests also run on Bun and Deno).
 */
async function derivations(f: () => Promise<unknown>): Promise<number> {
  const subtle = globalThis.crypto.subtle;
  const original = subtle.deriveBits;
  let n = 0;
  Object.defineProperty(subtle, 'deriveBits', {
    configurable: true,
    writable: true,
    value: (...args: Parameters<SubtleCrypto['deriveBits']>) => {
      n++;
      return original.apply(subtle, args);
    },
  });
  try {
    await f();
    return n;
  } finally {
    delete (subtle as { deriveBits?: unknown }).deriveBits;
  }
}

afterEach(() => defaultScramKeyCache.clear());

describe('SCRAM client key cache (RFC 5802 §5.1)', () => {
  it('a reconnect with the same password, salt and iterations skips PBKDF2 and still authenticates', async () => {
    const cache = new ScramKeyCache();
    const verifier = await scramVerifier('secret', { iterations: ITER, salt: SALT_A });
    expect(await derivations(() => exchange('secret', verifier, cache))).toBe(1);
    expect(await derivations(() => exchange('secret', verifier, cache))).toBe(0);
    expect(cache.size).toBe(1);
  });

  it('the process-wide cache is the default', async () => {
    const verifier = await scramVerifier('secret', { iterations: ITER, salt: SALT_A });
    expect(await derivations(() => exchange('secret', verifier))).toBe(1);
    expect(await derivations(() => exchange('secret', verifier))).toBe(0);
    expect(defaultScramKeyCache.size).toBe(1);
  });

  it('another salt, iteration count or password derives anew', async () => {
    const cache = new ScramKeyCache();
    const a = await scramVerifier('secret', { iterations: ITER, salt: SALT_A });
    await exchange('secret', a, cache);
    const b = await scramVerifier('secret', { iterations: ITER, salt: SALT_B });
    expect(await derivations(() => exchange('secret', b, cache))).toBe(1);
    const c = await scramVerifier('secret', { iterations: ITER + 1, salt: SALT_A });
    expect(await derivations(() => exchange('secret', c, cache))).toBe(1);
    // A wrong password is its own entry: it fails now and it cannot spoil the right one.
    let failed = 0;
    const d = await derivations(() =>
      exchange('wrong', a, cache).catch((e) => (failed += +(e instanceof AuthError))),
    );
    expect([d, failed]).toEqual([1, 1]);
    expect(await derivations(() => exchange('secret', a, cache))).toBe(0);
    expect(cache.size).toBe(4);
  });

  it('null derives every time and keeps nothing', async () => {
    const verifier = await scramVerifier('secret', { iterations: ITER, salt: SALT_A });
    expect(await derivations(() => exchange('secret', verifier, null))).toBe(1);
    expect(await derivations(() => exchange('secret', verifier, null))).toBe(1);
    expect(defaultScramKeyCache.size).toBe(0);
  });

  it('is bounded: the least recently used entry goes first', () => {
    const cache = new ScramKeyCache(2);
    const keys = {
      clientKey: new Uint8Array(32),
      storedKey: new Uint8Array(32),
      serverKey: new Uint8Array(32),
    };
    const pw = (s: string) => enc.encode(s);
    cache.set(pw('a'), SALT_A, ITER, keys);
    cache.set(pw('b'), SALT_A, ITER, keys);
    expect(cache.get(pw('a'), SALT_A, ITER)).toBeDefined(); // a is now the most recent
    cache.set(pw('c'), SALT_A, ITER, keys);
    expect(cache.size).toBe(2);
    expect(cache.get(pw('b'), SALT_A, ITER)).toBeUndefined();
    expect(cache.get(pw('a'), SALT_A, ITER)).toBeDefined();
    expect(cache.get(pw('c'), SALT_A, ITER)).toBeDefined();
    expect(() => new ScramKeyCache(0)).toThrow(RangeError);
  });

  it('hands out copies: changing what it returned or stored does not change the cache', () => {
    const cache = new ScramKeyCache();
    const pw = enc.encode('p');
    const keys = {
      clientKey: new Uint8Array(32).fill(1),
      storedKey: new Uint8Array(32),
      serverKey: new Uint8Array(32),
    };
    cache.set(pw, SALT_A, ITER, keys);
    keys.clientKey.fill(9);
    const got = cache.get(pw, SALT_A, ITER)!;
    expect(got.clientKey[0]).toBe(1);
    got.clientKey.fill(7);
    expect(cache.get(pw, SALT_A, ITER)!.clientKey[0]).toBe(1);
  });

  it('ids are keyed per cache (HMAC under a random key), not a plain hash one could test guesses against', () => {
    const keys = {
      clientKey: new Uint8Array(32),
      storedKey: new Uint8Array(32),
      serverKey: new Uint8Array(32),
    };
    const ids = [new ScramKeyCache(), new ScramKeyCache()].map((c) => {
      c.set(enc.encode('secret'), SALT_A, ITER, keys);
      return [...(c as unknown as { entries: Map<string, unknown> }).entries.keys()];
    });
    expect(ids[0]).toHaveLength(1);
    expect(ids[1]).toHaveLength(1);
    expect(ids[0]![0]).not.toBe(ids[1]![0]);
  });

  it('keys by length-prefixed inputs: moving bytes between salt and password is another entry', () => {
    const cache = new ScramKeyCache();
    const keys = {
      clientKey: new Uint8Array(32),
      storedKey: new Uint8Array(32),
      serverKey: new Uint8Array(32),
    };
    cache.set(enc.encode('ab'), enc.encode('c'), ITER, keys);
    expect(cache.get(enc.encode('b'), enc.encode('ca'), ITER)).toBeUndefined();
    expect(cache.get(enc.encode('ab'), enc.encode('c'), ITER)).toBeDefined();
  });
});
