/**
 * SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677; channel binding `tls-server-end-point`,
 * RFC 5929) as pure state objects, for both roles. No I/O: each step takes the peer's message bytes and
 * returns the next message to send. Messages, limits and error texts follow libpq (fe-auth-scram.c) and
 * the backend (auth-scram.c).
 *
 * Errors: malformed messages throw ProtocolError (the backend's 08P01 cases); authentication
 * decisions (nonce or signature mismatch, channel-binding check, wrong proof, downgrade) throw
 * AuthError. Once a step has thrown, the object is dead and every further call throws AuthError.
 *
 * Crypto: PBKDF2 on WebCrypto (deriveBits; native, and thousands of iterations), HMAC and SHA-256 of
 * the short exchange values on @noble/hashes; every comparison of nonces, keys and signatures is
 * constant-time (CVE-2026-6478).
 */
import { hmac as nobleHmac } from '@noble/hashes/hmac.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { AuthError, OptionError, ProtocolError } from '../errors.ts';
import { concatBytes, fromBase64, fromLatin1, latin1, owned, toBase64, utf8 } from './bytes.ts';
import { constantTimeEqual } from './constant-time.ts';
import { randomBytes } from './random.ts';
import { pgSaslprep } from './saslprep.ts';
import { defaultScramKeyCache, type ScramKeyCache, type ScramKeys } from './scram-key-cache.ts';

export type ScramMechanism = 'SCRAM-SHA-256' | 'SCRAM-SHA-256-PLUS';

/** Channel-binding data: the RFC 5929 hash of the server's certificate (see channel-binding.ts). */
export interface ChannelBinding {
  type: 'tls-server-end-point';
  data: Uint8Array;
}

/** What the server stores per role: PostgreSQL's `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`. */
export interface ScramVerifier {
  iterations: number;
  salt: Uint8Array;
  storedKey: Uint8Array;
  serverKey: Uint8Array;
}

/** PostgreSQL's default iteration count (`scram_iterations`) and salt length. */
export const SCRAM_DEFAULT_ITERATIONS = 4096;
export const SCRAM_DEFAULT_SALT_LENGTH = 16;

/**
 * Default cap on the iteration count a server may ask the client for. A hostile or compromised server
 * can otherwise send `i=2147483647` and keep a core busy for many minutes of PBKDF2 per connection
 * attempt. One million is 244× PostgreSQL's default and leaves headroom over OWASP's 2023
 * recommendation for PBKDF2-HMAC-SHA256 (600 000), so any sane `scram_iterations` still works, while a
 * single attempt stays well under a second of CPU. libpq itself has no cap; raise it with
 * `maxIterations` if a server really uses more.
 */
export const SCRAM_DEFAULT_MAX_ITERATIONS = 1_000_000;

/** WebCrypto's PBKDF2 iteration count is an unsigned long. */
const MAX_ITERATIONS_LIMIT = 0xffff_ffff;
const KEY_LENGTH = 32;
const RAW_NONCE_LENGTH = 18;
const CBIND_TYPE = 'tls-server-end-point';
const CLIENT_KEY = utf8('Client Key');
const SERVER_KEY = utf8('Server Key');
const COMMA = utf8(',');

// ---------------------------------------------------------------------------------------------
// Crypto primitives

const subtle = (): SubtleCrypto => globalThis.crypto.subtle;

// HMAC and SHA-256 of a few dozen bytes run synchronously (@noble/hashes): each WebCrypto call is a
// round trip through the runtime's thread pool, and an exchange makes seven of them.
function hmac(key: Uint8Array, data: Uint8Array): Uint8Array<ArrayBuffer> {
  return nobleHmac(nobleSha256, key, data) as Uint8Array<ArrayBuffer>;
}

function sha256(data: Uint8Array): Uint8Array<ArrayBuffer> {
  return nobleSha256(data) as Uint8Array<ArrayBuffer>;
}

/** Hi() of RFC 5802: PBKDF2-HMAC-SHA-256 with a 32-byte output. */
async function saltedPassword(password: Uint8Array, salt: Uint8Array, iterations: number) {
  const k = await subtle().importKey('raw', owned(password), 'PBKDF2', false, ['deriveBits']);
  const bits = await subtle().deriveBits(
    { name: 'PBKDF2', hash: 'SHA-256', salt: owned(salt), iterations },
    k,
    KEY_LENGTH * 8,
  );
  return new Uint8Array(bits);
}

function xor(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] ?? 0) ^ (b[i] ?? 0);
  return out;
}

function randomNonce(): string {
  return toBase64(randomBytes(RAW_NONCE_LENGTH));
}

// ---------------------------------------------------------------------------------------------
// Message parsing (over a latin-1 view of the bytes, so the original bytes can always be rebuilt)

/** Printable ASCII, '?' for anything else, at most 30 characters (the backend's sanitize_str). */
function sanitize(s: string): string {
  let out = '';
  for (const ch of s.slice(0, 30)) {
    const c = ch.charCodeAt(0);
    out += c >= 0x21 && c <= 0x7e ? ch : '?';
  }
  return out;
}

function sanitizeChar(ch: string | undefined): string {
  if (ch === undefined) return 'end of message';
  const c = ch.charCodeAt(0);
  return c >= 0x21 && c <= 0x7e ? `'${ch}'` : `0x${c.toString(16).padStart(2, '0')}`;
}

/** printable = %x21-2B / %x2D-7E (RFC 5802): printable ASCII except ','. */
const PRINTABLE_RE = /^[\x21-\x2b\x2d-\x7e]+$/;

function malformed(detail: string): ProtocolError {
  return new ProtocolError(`malformed SCRAM message (${detail})`);
}

/** A cursor with the semantics of the C read_attr_value/read_any_attr helpers. */
class Cursor {
  pos = 0;
  constructor(readonly s: string) {}

  get atEnd(): boolean {
    return this.pos >= this.s.length;
  }

  peek(): string | undefined {
    return this.s[this.pos];
  }

  private value(): string {
    const end = this.s.indexOf(',', this.pos);
    const v = end < 0 ? this.s.slice(this.pos) : this.s.slice(this.pos, end);
    this.pos = end < 0 ? this.s.length : end + 1;
    return v;
  }

  /** Reads `<attr>=<value>` up to the next comma (which is consumed). */
  attr(attr: string): string {
    const c = this.peek();
    if (c !== attr) throw malformed(`attribute "${attr}" expected, found ${sanitizeChar(c)}`);
    if (this.s[this.pos + 1] !== '=') throw malformed(`expected character "=" for attribute "${attr}"`);
    this.pos += 2;
    return this.value();
  }

  /** Reads any `ALPHA=value` attribute. */
  any(): [string, string] {
    const c = this.peek();
    if (c === undefined) throw malformed('attribute expected, but found end of message');
    if (!/^[A-Za-z]$/.test(c)) throw malformed(`attribute expected, but found ${sanitizeChar(c)}`);
    if (this.s[this.pos + 1] !== '=') throw malformed(`expected character "=" for attribute "${c}"`);
    this.pos += 2;
    return [c, this.value()];
  }
}

/** Latin-1 view of a SCRAM message, rejecting empty messages and embedded NULs as the C code does. */
function messageText(bytes: Uint8Array, what: string): string {
  if (bytes.length === 0) throw malformed(`empty ${what}`);
  if (bytes.includes(0)) throw malformed(`length mismatch in ${what}`);
  return latin1(bytes);
}

/** An iteration count or cap given by the caller: an integer in 1..2^32-1, else an OptionError. */
export function checkIterations(n: number, what: string): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_ITERATIONS_LIMIT) {
    throw new OptionError(`${what} must be an integer between 1 and ${MAX_ITERATIONS_LIMIT}, got ${n}`);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Key derivation and the PostgreSQL verifier format

/** `cache`: the client's key cache (scram-key-cache.ts); the server side never caches. */
async function deriveKeys(
  password: string | Uint8Array,
  salt: Uint8Array,
  iterations: number,
  cache: ScramKeyCache | null = null,
): Promise<ScramKeys> {
  try {
    const prepared = pgSaslprep(password);
    const cached = cache?.get(prepared, salt, iterations);
    if (cached) return cached;
    const sp = await saltedPassword(prepared, salt, iterations);
    const clientKey = hmac(sp, CLIENT_KEY);
    const keys = { clientKey, storedKey: sha256(clientKey), serverKey: hmac(sp, SERVER_KEY) };
    cache?.set(prepared, salt, iterations, keys);
    return keys;
  } catch (e) {
    // WebCrypto refusing its input (a runtime that rejects an empty PBKDF2 password, say).
    throw new AuthError(`could not compute SCRAM keys: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Builds the verifier PostgreSQL would store for `password` (`pg_be_scram_build_secret`): SASLprep
 * with raw-bytes fallback, PBKDF2-HMAC-SHA-256, StoredKey = H(HMAC(SaltedPassword, "Client Key")),
 * ServerKey = HMAC(SaltedPassword, "Server Key"). The salt defaults to 16 random bytes.
 */
export async function scramVerifier(
  password: string | Uint8Array,
  options: { iterations?: number; salt?: Uint8Array } = {},
): Promise<ScramVerifier> {
  const iterations = checkIterations(options.iterations ?? SCRAM_DEFAULT_ITERATIONS, 'SCRAM iteration count');
  const salt = options.salt
    ? new Uint8Array(options.salt)
    : globalThis.crypto.getRandomValues(new Uint8Array(SCRAM_DEFAULT_SALT_LENGTH));
  const { storedKey, serverKey } = await deriveKeys(password, salt, iterations);
  return { iterations, salt, storedKey, serverKey };
}

/** `SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>` */
export function formatScramVerifier(v: ScramVerifier): string {
  return `SCRAM-SHA-256$${v.iterations}:${toBase64(v.salt)}$${toBase64(v.storedKey)}:${toBase64(v.serverKey)}`;
}

const VERIFIER_RE = /^SCRAM-SHA-256\$([1-9][0-9]{0,9}):([^$:]*)\$([^$:]*):([^$:]*)$/;

/**
 * Parses PostgreSQL's stored SCRAM secret (pg_authid.rolpassword). Returns null when the string is not
 * a well-formed SCRAM-SHA-256 secret (like `parse_scram_secret` returning false), e.g. an `md5...`
 * hash. Stricter than the backend in one way: the iteration count must be a plain positive decimal.
 */
export function parseScramVerifier(secret: string): ScramVerifier | null {
  const m = VERIFIER_RE.exec(secret);
  if (!m) return null;
  const iterations = Number(m[1]);
  const salt = fromBase64(m[2] ?? '');
  const storedKey = fromBase64(m[3] ?? '');
  const serverKey = fromBase64(m[4] ?? '');
  if (iterations > MAX_ITERATIONS_LIMIT || !salt || salt.length === 0) return null;
  if (storedKey?.length !== KEY_LENGTH || serverKey?.length !== KEY_LENGTH) return null;
  return { iterations, salt, storedKey, serverKey };
}

/**
 * Checks a cleartext password against a stored SCRAM verifier (the backend's
 * `scram_verify_plain_password`, used for `password` authentication of a role with a SCRAM secret):
 * recomputes ServerKey and compares in constant time.
 */
export async function verifyScramPlainPassword(
  password: string | Uint8Array,
  verifier: ScramVerifier,
): Promise<boolean> {
  const { serverKey } = await deriveKeys(password, verifier.salt, verifier.iterations);
  return constantTimeEqual(serverKey, verifier.serverKey);
}

/**
 * A deterministic stand-in verifier for a role that does not exist or has no SCRAM secret, so the
 * exchange runs to the end and fails exactly like a wrong password (PostgreSQL's `mock_scram_secret`):
 * salt = first 16 bytes of SHA-256(user ‖ secretSeed), where `secretSeed` is a per-server secret that
 * never changes (PostgreSQL's cluster mock-authentication nonce), so the same unknown user always sees
 * the same salt. Pass the server's configured iteration count (CVE-2026-14672: a fixed 4096 reveals
 * which roles exist when `scram_iterations` differs). The keys are all zero; give the ScramServer
 * `doomed: true` as well.
 */
export async function mockVerifier(
  user: string,
  secretSeed: Uint8Array | string,
  iterations: number = SCRAM_DEFAULT_ITERATIONS,
): Promise<ScramVerifier> {
  checkIterations(iterations, 'SCRAM iteration count');
  const seed = typeof secretSeed === 'string' ? utf8(secretSeed) : secretSeed;
  const digest = sha256(concatBytes(utf8(user), seed));
  return {
    iterations,
    salt: digest.slice(0, SCRAM_DEFAULT_SALT_LENGTH),
    storedKey: new Uint8Array(KEY_LENGTH),
    serverKey: new Uint8Array(KEY_LENGTH),
  };
}

// ---------------------------------------------------------------------------------------------
// Client

export interface ScramClientOptions {
  password: string | Uint8Array;
  mechanism: ScramMechanism;
  /** Required for SCRAM-SHA-256-PLUS: the server certificate hash (tlsServerEndPointHash). */
  channelBinding?: ChannelBinding;
  /**
   * For SCRAM-SHA-256: send gs2 flag `y` ("I support channel binding but think you don't") instead of
   * `n`. libpq does so on TLS connections with channel_binding != disable. Defaults to true when
   * `channelBinding` is given, false otherwise.
   */
  clientSupportsBinding?: boolean;
  /** Highest iteration count accepted from the server; default SCRAM_DEFAULT_MAX_ITERATIONS. */
  maxIterations?: number;
  /** The client nonce (printable ASCII without ','); random 18 bytes, base64, by default. Tests only. */
  nonce?: string;
  /**
   * The `n=` user name. PostgreSQL ignores it (it uses the startup packet's) and libpq sends it empty,
   * which is the default; only for RFC test vectors or other servers. Encoded as RFC 5802 saslname.
   */
  username?: string;
  /**
   * Where derived keys are kept between handshakes (RFC 5802 §5.1; see scram-key-cache.ts): a
   * reconnect with the same password, salt and iteration count skips PBKDF2. Default: the process-wide
   * `defaultScramKeyCache`; null derives every time and keeps nothing.
   */
  keyCache?: ScramKeyCache | null;
}

type ClientState = 'initial' | 'first-sent' | 'busy' | 'final-sent' | 'done' | 'failed';

export class ScramClient {
  readonly mechanism: ScramMechanism;
  private state: ClientState = 'initial';
  private readonly password: string | Uint8Array;
  private readonly gs2Header: string;
  private readonly cbindData: Uint8Array;
  private readonly nonce: string;
  private readonly maxIterations: number;
  private readonly username: string;
  private readonly keyCache: ScramKeyCache | null;
  private clientFirstBare: Uint8Array = new Uint8Array(0);
  private serverSignature: Uint8Array | null = null;

  constructor(options: ScramClientOptions) {
    this.mechanism = options.mechanism;
    this.password = options.password;
    this.keyCache = options.keyCache === undefined ? defaultScramKeyCache : options.keyCache;
    this.maxIterations = checkIterations(
      options.maxIterations ?? SCRAM_DEFAULT_MAX_ITERATIONS,
      'maximum SCRAM iteration count',
    );
    if (options.mechanism === 'SCRAM-SHA-256-PLUS') {
      const cb = options.channelBinding;
      if (!cb || cb.type !== CBIND_TYPE || cb.data.length === 0) {
        throw new AuthError('SCRAM-SHA-256-PLUS requires tls-server-end-point channel-binding data');
      }
      this.gs2Header = `p=${CBIND_TYPE},,`;
      this.cbindData = new Uint8Array(cb.data);
    } else if (options.mechanism === 'SCRAM-SHA-256') {
      this.gs2Header =
        (options.clientSupportsBinding ?? options.channelBinding !== undefined) ? 'y,,' : 'n,,';
      this.cbindData = new Uint8Array(0);
    } else {
      throw new AuthError(`unsupported SASL mechanism "${sanitize(String(options.mechanism))}"`);
    }
    if (options.nonce !== undefined && !PRINTABLE_RE.test(options.nonce)) {
      throw new OptionError('SCRAM client nonce must be printable ASCII without ","');
    }
    this.nonce = options.nonce ?? randomNonce();
    this.username = (options.username ?? '').replaceAll('=', '=3D').replaceAll(',', '=2C');
  }

  /** True once the server's signature has been verified. */
  get done(): boolean {
    return this.state === 'done';
  }

  private enter(expected: ClientState, step: string, next: ClientState): void {
    if (this.state !== expected) {
      const was = this.state;
      this.state = 'failed';
      throw new AuthError(`SCRAM exchange: ${step} called out of order (state ${was})`);
    }
    this.state = next;
  }

  /** The client-first-message (SASLInitialResponse data): `<gs2 header>n=,r=<nonce>`. */
  clientFirstMessage(): Uint8Array {
    this.enter('initial', 'clientFirstMessage', 'first-sent');
    this.clientFirstBare = utf8(`n=${this.username},r=${this.nonce}`);
    return concatBytes(utf8(this.gs2Header), this.clientFirstBare);
  }

  /** Takes the server-first-message (AuthenticationSASLContinue) and returns the client-final-message. */
  async handleServerFirst(message: Uint8Array): Promise<Uint8Array> {
    this.enter('first-sent', 'handleServerFirst', 'busy');
    try {
      const serverFirst = new Uint8Array(message);
      const cur = new Cursor(messageText(serverFirst, 'server-first-message'));

      const nonce = cur.attr('r');
      const ours = utf8(this.nonce);
      const theirs = fromLatin1(nonce);
      // The server's nonce must extend ours (compared in constant time) with printable characters.
      if (theirs.length <= ours.length || !constantTimeEqual(theirs.subarray(0, ours.length), ours)) {
        throw new AuthError('invalid SCRAM response (nonce mismatch)');
      }
      if (!PRINTABLE_RE.test(nonce)) throw malformed('invalid nonce');

      const salt = fromBase64(cur.attr('s'));
      if (salt === null) throw malformed('invalid salt');

      const iterText = cur.attr('i');
      if (!/^[1-9][0-9]*$/.test(iterText)) throw malformed('invalid iteration count');
      const iterations = Number(iterText);
      if (iterations > this.maxIterations) {
        throw new AuthError(
          `SCRAM iteration count ${iterText.length > 12 ? `${iterText.slice(0, 12)}...` : iterText} ` +
            `exceeds the limit of ${this.maxIterations}`,
        );
      }
      if (!cur.atEnd) throw malformed('garbage at end of server-first-message');

      const cbindInput = concatBytes(utf8(this.gs2Header), this.cbindData);
      const withoutProof = utf8(`c=${toBase64(cbindInput)},r=${nonce}`);
      const authMessage = concatBytes(this.clientFirstBare, COMMA, serverFirst, COMMA, withoutProof);

      const { clientKey, storedKey, serverKey } = await deriveKeys(
        this.password,
        salt,
        iterations,
        this.keyCache,
      );
      const clientSignature = hmac(storedKey, authMessage);
      const proof = xor(clientKey, clientSignature);
      this.serverSignature = hmac(serverKey, authMessage);

      this.state = 'final-sent';
      return concatBytes(withoutProof, utf8(`,p=${toBase64(proof)}`));
    } catch (e) {
      this.state = 'failed';
      throw e;
    }
  }

  /** Takes the server-final-message (AuthenticationSASLFinal) and verifies the server's signature. */
  async handleServerFinal(message: Uint8Array): Promise<void> {
    this.enter('final-sent', 'handleServerFinal', 'busy');
    try {
      const cur = new Cursor(messageText(message, 'server-final-message'));
      if (cur.peek() === 'e') {
        throw new AuthError(`error received from server in SCRAM exchange: ${sanitize(cur.attr('e'))}`);
      }
      const encoded = cur.attr('v');
      if (!cur.atEnd) throw malformed('garbage at end of server-final-message');
      const signature = fromBase64(encoded);
      if (signature === null || signature.length !== KEY_LENGTH) throw malformed('invalid server signature');
      if (!this.serverSignature || !constantTimeEqual(signature, this.serverSignature)) {
        throw new AuthError('incorrect server signature');
      }
      this.state = 'done';
    } catch (e) {
      this.state = 'failed';
      throw e;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Server

export interface ScramServerOptions {
  /** The role's stored verifier, or mockVerifier(...) for an unknown role (with `doomed: true`). */
  verifier: ScramVerifier;
  /**
   * The mechanism the client named in SASLInitialResponse, checked against what was advertised and
   * against the gs2 header, as the backend does. When omitted it is inferred from the gs2 header
   * (`p=` → SCRAM-SHA-256-PLUS): the binding itself is still verified, only the cross-check is lost.
   */
  mechanism?: string;
  /** tls-server-end-point hash of our certificate when on TLS, null otherwise. */
  channelBinding: Uint8Array | null;
  /** Whether SCRAM-SHA-256-PLUS was advertised (PostgreSQL: whenever TLS is in use). Default: channelBinding !== null. */
  plusAdvertised?: boolean;
  /** Run the whole exchange but fail at the end, like a wrong password (unknown role / no SCRAM secret). */
  doomed?: boolean;
  /** The server's nonce part (printable ASCII without ','); random 18 bytes, base64, by default. Tests only. */
  nonce?: string;
}

type ServerState = 'initial' | 'first-sent' | 'busy' | 'done' | 'failed';

export class ScramServer {
  private state: ServerState = 'initial';
  private readonly verifier: ScramVerifier;
  private mechanism: string | undefined;
  private readonly cbindData: Uint8Array | null;
  private readonly plusAdvertised: boolean;
  private readonly doomed: boolean;
  private readonly serverNonce: string;
  private gs2Header = '';
  private clientFirstBare = '';
  private serverFirst = '';
  private combinedNonce = '';

  constructor(options: ScramServerOptions) {
    this.verifier = options.verifier;
    this.mechanism = options.mechanism;
    this.cbindData = options.channelBinding ? new Uint8Array(options.channelBinding) : null;
    this.plusAdvertised = options.plusAdvertised ?? options.channelBinding !== null;
    this.doomed = options.doomed ?? false;
    if (options.nonce !== undefined && !PRINTABLE_RE.test(options.nonce)) {
      throw new OptionError('SCRAM server nonce must be printable ASCII without ","');
    }
    this.serverNonce = options.nonce ?? randomNonce();
  }

  /** True once the client's proof has been verified and the server-final-message produced. */
  get done(): boolean {
    return this.state === 'done';
  }

  private enter(expected: ServerState, step: string, next: ServerState): void {
    if (this.state !== expected) {
      const was = this.state;
      this.state = 'failed';
      throw new AuthError(`SCRAM exchange: ${step} called out of order (state ${was})`);
    }
    this.state = next;
  }

  private get channelBindingInUse(): boolean {
    return this.mechanism === 'SCRAM-SHA-256-PLUS';
  }

  /** The mechanism in use (known once the client-first-message has been seen when not given up front). */
  get selectedMechanism(): string | undefined {
    return this.mechanism;
  }

  /** Takes the client-first-message (SASLInitialResponse data) and returns the server-first-message. */
  handleClientFirst(message: Uint8Array): Uint8Array {
    this.enter('initial', 'handleClientFirst', 'busy');
    try {
      const text = messageText(message, 'client-first-message');
      const cur = new Cursor(text);
      this.mechanism ??= cur.peek() === 'p' ? 'SCRAM-SHA-256-PLUS' : 'SCRAM-SHA-256';
      const plusOk = this.plusAdvertised && this.cbindData !== null && this.cbindData.length > 0;
      if (!(this.mechanism === 'SCRAM-SHA-256' || (this.mechanism === 'SCRAM-SHA-256-PLUS' && plusOk))) {
        throw new ProtocolError('client selected an invalid SASL authentication mechanism');
      }

      // gs2-cbind-flag
      const flag = cur.peek();
      if (flag === 'n' || flag === 'y') {
        if (this.channelBindingInUse) {
          throw malformed(
            'the client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data',
          );
        }
        if (flag === 'y' && this.plusAdvertised) {
          // RFC 5802 §6: the client thinks we do not support binding, but we advertised it: someone
          // in the middle stripped SCRAM-SHA-256-PLUS from the mechanism list.
          throw new AuthError(
            'SCRAM channel binding negotiation error: the client supports SCRAM channel binding but thinks the server does not, however this server does support channel binding',
          );
        }
        cur.pos++;
        if (cur.peek() !== ',') throw malformed(`comma expected, but found ${sanitizeChar(cur.peek())}`);
        cur.pos++;
      } else if (flag === 'p') {
        if (!this.channelBindingInUse) {
          throw malformed(
            'the client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data',
          );
        }
        const type = cur.attr('p');
        if (type !== CBIND_TYPE) {
          throw new ProtocolError(`unsupported SCRAM channel-binding type "${sanitize(type)}"`);
        }
      } else {
        throw malformed(`unexpected channel-binding flag ${sanitizeChar(flag)}`);
      }

      // [authzid] ","
      if (cur.peek() === 'a') {
        throw new AuthError('client uses authorization identity, but it is not supported');
      }
      if (cur.peek() !== ',') {
        throw malformed(`unexpected attribute ${sanitizeChar(cur.peek())} in client-first-message`);
      }
      cur.pos++;
      this.gs2Header = text.slice(0, cur.pos);
      this.clientFirstBare = text.slice(cur.pos);

      if (cur.peek() === 'm') throw new AuthError('client requires an unsupported SCRAM extension');
      cur.attr('n'); // ignored: PostgreSQL authenticates the startup packet's user
      const clientNonce = cur.attr('r');
      if (!PRINTABLE_RE.test(clientNonce)) {
        throw new ProtocolError('non-printable characters in SCRAM nonce');
      }
      while (!cur.atEnd) cur.any(); // optional extensions, ignored

      this.combinedNonce = clientNonce + this.serverNonce;
      const v = this.verifier;
      this.serverFirst = `r=${this.combinedNonce},s=${toBase64(v.salt)},i=${v.iterations}`;
      this.state = 'first-sent';
      return fromLatin1(this.serverFirst);
    } catch (e) {
      this.state = 'failed';
      throw e;
    }
  }

  /**
   * Takes the client-final-message (SASLResponse data): checks channel binding, the nonce and the
   * client's proof, and returns the server-final-message `v=<ServerSignature>`. Throws AuthError when
   * authentication fails (wrong password, mock verifier, binding mismatch).
   */
  async handleClientFinal(message: Uint8Array): Promise<Uint8Array> {
    this.enter('first-sent', 'handleClientFinal', 'busy');
    try {
      const text = messageText(message, 'client-final-message');
      const cur = new Cursor(text);

      const cbind = cur.attr('c');
      if (this.channelBindingInUse) {
        const expected = toBase64(concatBytes(utf8(this.gs2Header), this.cbindData ?? new Uint8Array(0)));
        if (!constantTimeEqual(fromLatin1(cbind), utf8(expected))) {
          throw new AuthError('SCRAM channel binding check failed');
        }
      } else if (cbind !== toBase64(utf8(this.gs2Header))) {
        // "biws" for n,, or "eSws" for y,,: the same flag the client sent first.
        throw new ProtocolError('unexpected SCRAM channel-binding attribute in client-final-message');
      }

      const finalNonce = cur.attr('r');
      // Extensions, if any, up to the proof; they stay part of client-final-message-without-proof.
      let proofStart: number;
      let attr: string;
      let value: string;
      do {
        proofStart = cur.pos - 1;
        [attr, value] = cur.any();
      } while (attr !== 'p');
      const proof = fromBase64(value);
      if (proof === null || proof.length !== KEY_LENGTH) {
        throw malformed('malformed proof in client-final-message');
      }
      if (!cur.atEnd) throw malformed('garbage at the end of client-final-message');
      if (!constantTimeEqual(fromLatin1(finalNonce), fromLatin1(this.combinedNonce))) {
        throw new ProtocolError('invalid SCRAM response (nonce does not match)');
      }

      const withoutProof = text.slice(0, proofStart);
      const authMessage = fromLatin1(`${this.clientFirstBare},${this.serverFirst},${withoutProof}`);
      // Always compute the proof, even when doomed, so timing does not reveal whether the role exists.
      const clientSignature = hmac(this.verifier.storedKey, authMessage);
      const clientKey = xor(proof, clientSignature);
      const ok = constantTimeEqual(sha256(clientKey), this.verifier.storedKey);
      if (!ok || this.doomed) throw new AuthError('SCRAM authentication failed: invalid client proof');

      const serverSignature = hmac(this.verifier.serverKey, authMessage);
      this.state = 'done';
      return utf8(`v=${toBase64(serverSignature)}`);
    } catch (e) {
      this.state = 'failed';
      throw e;
    }
  }
}
