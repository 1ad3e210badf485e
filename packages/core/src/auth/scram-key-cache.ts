/**
 * The client's SCRAM key cache. RFC 5802 §5.1: "a client implementation MAY cache
 * ClientKey&ServerKey (or just SaltedPassword) for later reauthentication to the same service, as it
 * is likely that the server is going to advertise the same salt value upon reauthentication."
 * PostgreSQL does: the salt changes only when the role's password does. Every reconnect of a pool then
 * skips PBKDF2 (4096 HMAC rounds by default, about 1–2 ms of CPU on these runtimes), the largest cost
 * a TLS + SCRAM handshake puts on the client. The MongoDB drivers all do the same.
 *
 * The keys are a pure function of (password, salt, iterations), so an entry can never be stale: a new
 * password or a new salt is simply another entry. No password is held here, only the derived keys, which
 * authenticate as the role to servers that store this salt — no more than the password the application
 * already keeps in memory to reconnect. Entries are found by HMAC-SHA-256 over all three inputs under a
 * random key of the cache's own: a plain hash would let anyone who sees the ids (a heap snapshot shows
 * strings) test password guesses at one SHA-256 each instead of 4096 PBKDF2 rounds.
 * The cache is bounded (least recently used entries go first), so a hostile server sending a new salt
 * every time costs a little memory, never growth. Pass `null` where keys must not outlive a handshake.
 */
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { toBase64 } from './bytes.ts';

export interface ScramKeys {
  clientKey: Uint8Array;
  storedKey: Uint8Array;
  serverKey: Uint8Array;
}

export class ScramKeyCache {
  private readonly entries = new Map<string, ScramKeys>();
  /**
   * Keys the entry ids (see above); never leaves this object. Drawn on first use, not at import: some
   * runtimes (Cloudflare Workers) refuse random values while a module is being loaded.
   */
  private idKeyBytes: Uint8Array | null = null;
  readonly capacity: number;

  constructor(capacity = 64) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`ScramKeyCache capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
  }

  private get idKey(): Uint8Array {
    this.idKeyBytes ??= globalThis.crypto.getRandomValues(new Uint8Array(32));
    return this.idKeyBytes;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The keys for these inputs, or undefined; a hit becomes the most recently used entry. */
  get(password: Uint8Array, salt: Uint8Array, iterations: number): ScramKeys | undefined {
    const id = entryId(this.idKey, password, salt, iterations);
    const keys = this.entries.get(id);
    if (keys === undefined) return undefined;
    this.entries.delete(id);
    this.entries.set(id, keys);
    return copy(keys);
  }

  set(password: Uint8Array, salt: Uint8Array, iterations: number, keys: ScramKeys): void {
    const id = entryId(this.idKey, password, salt, iterations);
    this.entries.delete(id);
    this.entries.set(id, copy(keys));
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  clear(): void {
    this.entries.clear();
  }
}

/** The cache ScramClient uses unless told otherwise: one per process (module instance). */
export const defaultScramKeyCache: ScramKeyCache = new ScramKeyCache();

/** HMAC over length-prefixed inputs, so no two (password, salt, iterations) share an id. */
function entryId(key: Uint8Array, password: Uint8Array, salt: Uint8Array, iterations: number): string {
  const buf = new Uint8Array(12 + salt.length + password.length);
  const view = new DataView(buf.buffer);
  view.setUint32(0, iterations);
  view.setUint32(4, salt.length);
  buf.set(salt, 8);
  view.setUint32(8 + salt.length, password.length);
  buf.set(password, 12 + salt.length);
  const id = toBase64(hmac(sha256, key, buf));
  buf.fill(0); // the password's bytes do not linger in a dead buffer
  return id;
}

/** Callers get their own arrays: nothing they do to them reaches the cache. */
function copy(k: ScramKeys): ScramKeys {
  return {
    clientKey: new Uint8Array(k.clientKey),
    storedKey: new Uint8Array(k.storedKey),
    serverKey: new Uint8Array(k.serverKey),
  };
}
