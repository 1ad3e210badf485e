/**
 * Small byte helpers shared by the authentication modules: UTF-8, strict base64 and copying into
 * ArrayBuffer-backed arrays (what WebCrypto's BufferSource wants). Internal; not re-exported.
 */

const encoder = new TextEncoder();
const fatalDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8(s: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(s);
}

/** Decodes UTF-8, or returns null when the bytes are not valid UTF-8. */
export function utf8DecodeStrict(bytes: Uint8Array): string | null {
  try {
    return fatalDecoder.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * Latin-1 view of bytes: one char per byte. SCRAM messages are parsed this way so that every byte
 * sequence maps to a string (nothing is lost or replaced) and the original bytes can be rebuilt.
 */
export function latin1(bytes: Uint8Array): string {
  let s = '';
  // apply() takes the typed array as it is; a spread walks the iterator protocol, 5-7x slower on
  // 100 bytes (Node, Bun, Deno), and every SCRAM message and base64 value passes through here.
  for (let i = 0; i < bytes.length; i += 0x2000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x2000) as unknown as number[]);
  }
  return s;
}

/** Inverse of {@link latin1}; every char must be < 0x100 (the callers guarantee it). */
export function fromLatin1(s: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** The same bytes in an ArrayBuffer-backed array (copied only when the input is backed by something else). */
export function owned(u: Uint8Array): Uint8Array<ArrayBuffer> {
  return u.buffer instanceof ArrayBuffer ? (u as Uint8Array<ArrayBuffer>) : new Uint8Array(u);
}

export function toBase64(bytes: Uint8Array): string {
  return btoa(latin1(bytes));
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Strict, canonical base64 (RFC 4648 §4: padded, no whitespace, unused trailing bits zero). Returns
 * null for anything else. Stricter than PostgreSQL's pg_b64_decode (which skips whitespace and ignores
 * the unused bits), but every real encoder produces this form, and it means a signature or proof has
 * exactly one accepted spelling.
 */
export function fromBase64(s: string): Uint8Array<ArrayBuffer> | null {
  if (!BASE64_RE.test(s)) return null;
  const bin = atob(s);
  if (btoa(bin) !== s) return null;
  return fromLatin1(bin);
}
