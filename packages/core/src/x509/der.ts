/**
 * A minimal DER reader: one tag-length-value at a time, as views into the input (nothing is copied).
 * pgconn reads three things from a certificate (the signature algorithm, the subjectAltNames and the
 * subject's common names); a full ASN.1 object model costs about a millisecond per certificate,
 * which is most of a client's own work in a TLS handshake, and it is read on every connection.
 */

export class DerError extends Error {}

/** One element: its identifier octet, where its content lies and where the next element starts. */
export interface Tlv {
  /** The first identifier octet (class, constructed bit and a tag number below 31). */
  readonly tag: number;
  readonly start: number;
  readonly end: number;
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Context-specific tag [n]: constructed (EXPLICIT or a constructed IMPLICIT type) or primitive. */
export const context = (n: number, constructed: boolean): number => (constructed ? 0xa0 : 0x80) | n;

/**
 * Reads the element at `pos`, which must end by `limit`. Definite lengths only (DER), at most four
 * length octets; a multi-octet tag number is accepted and skipped (`tag` then holds 0x1f bits).
 */
export function readTlv(der: Uint8Array, pos: number, limit: number): Tlv {
  if (pos >= limit) throw new DerError('truncated element');
  const tag = der[pos++]!;
  if ((tag & 0x1f) === 0x1f) {
    let more = 0;
    do {
      if (pos >= limit || ++more > 4) throw new DerError('bad tag');
    } while (der[pos++]! & 0x80);
  }
  if (pos >= limit) throw new DerError('truncated length');
  let len = der[pos++]!;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || pos + n > limit) throw new DerError('bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[pos++]!;
  }
  if (len > limit - pos) throw new DerError('length beyond the enclosing element');
  return { tag, start: pos, end: pos + len };
}

/** Reads an element that must carry `tag`. */
export function expectTlv(der: Uint8Array, pos: number, limit: number, tag: number, what: string): Tlv {
  const t = readTlv(der, pos, limit);
  if (t.tag !== tag) throw new DerError(`${what}: unexpected tag 0x${t.tag.toString(16)}`);
  return t;
}

/** The children of a constructed element, in order. */
export function* children(der: Uint8Array, parent: Tlv): Generator<Tlv> {
  for (let pos = parent.start; pos < parent.end; ) {
    const t = readTlv(der, pos, parent.end);
    yield t;
    pos = t.end;
  }
}

/** An OBJECT IDENTIFIER's content as dotted decimal. */
export function oidText(der: Uint8Array, t: Tlv): string {
  if (t.start === t.end) throw new DerError('empty OID');
  const arcs: number[] = [];
  let v = 0;
  for (let i = t.start; i < t.end; i++) {
    const b = der[i]!;
    if (v === 0 && b === 0x80) throw new DerError('non-minimal OID arc');
    v = v * 128 + (b & 0x7f);
    if (v > Number.MAX_SAFE_INTEGER / 128) throw new DerError('OID arc too large');
    if (b & 0x80) continue;
    if (arcs.length === 0) arcs.push(v < 40 ? 0 : v < 80 ? 1 : 2, v < 80 ? v % 40 : v - 80);
    else arcs.push(v);
    v = 0;
  }
  if (der[t.end - 1]! & 0x80) throw new DerError('truncated OID');
  return arcs.join('.');
}
