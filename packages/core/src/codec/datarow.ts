/**
 * DataRow straight to text, for drivers that want strings (what node-postgres's parser produces).
 * Decoding each field separately costs one TextDecoder call per field; instead the whole body is
 * decoded once and fields are cut out with `substring`. That is exact whenever the decoded string
 * has as many UTF-16 units as the body has bytes: then every byte became exactly one unit (ASCII, or
 * a lone invalid byte → U+FFFD, which a per-field decode gives too), so byte offsets are string
 * offsets.
 *
 * A multi-byte character breaks the equality (a name like "Zoë" in the row). While the length words
 * are below 128 or -1 (short fields, the common case), the row is still cut from the same string:
 * such a word is 00 00 00 <ASCII> or FF FF FF FF, four units that no UTF-8 sequence can join (no byte
 * of it continues a sequence, none of it starts one), so every field decodes in the string exactly
 * as on its own. A field of valid UTF-8 is then a substring at the running offset, its UTF-16 length
 * counted from its bytes; a field with invalid bytes is decoded on its own (the decoder's U+FFFD
 * rules), and its length moves the offset on. From the first field of 128 bytes or more on, fields
 * are decoded on their own (a length word such as 00 00 C3 A9 holds "é", and may join the field
 * behind it; the fields before it are not affected, its first byte is 00).
 * Bounds checks and errors match decodeBackend's DataRow.
 */
import { ProtocolError } from '../errors.ts';

// ignoreBOM: a value that starts with U+FEFF must keep it.
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });

const fail = (reason: string): never => {
  throw new ProtocolError(`invalid DataRow message: ${reason}`);
};

const lengthAt = (b: Uint8Array, at: number): number =>
  (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!;

/** A DataRow body's fields as strings (`null` for SQL NULL). */
export function decodeDataRowText(body: Uint8Array): (string | null)[] {
  const end = body.length;
  if (end < 2) fail('truncated');
  const count = (body[0]! << 8) | body[1]!;
  if (count > 0x7fff) fail(`negative field count ${count - 0x10000}`);
  if (count * 4 > end - 2) fail(`${count} fields cannot fit in ${end} bytes`);
  const fields = new Array<string | null>(count);
  const whole = decoder.decode(body);
  const aligned = whole.length === end;
  // Off the byte-per-unit path: `at` is the string offset of `pos` while every length word so far
  // was short; from the first long one on, fields are decoded on their own.
  let byField = false;
  let at = 2; // the count word is two units: its first byte is ASCII, the next byte a length word's
  let pos = 2;
  for (let i = 0; i < count; i++) {
    if (end - pos < 4) fail('truncated');
    const len = lengthAt(body, pos);
    pos += 4;
    at += 4;
    if (len < 0) {
      if (len !== -1) fail(`invalid field length ${len}`);
      fields[i] = null;
      continue;
    }
    if (end - pos < len) fail('truncated');
    if (aligned) fields[i] = whole.substring(pos, pos + len);
    else {
      if (len >= 0x80) byField = true;
      const units = byField ? -1 : utf16Length(body, pos, pos + len);
      if (units >= 0) {
        fields[i] = whole.substring(at, at + units);
        at += units;
      } else {
        const text = decoder.decode(body.subarray(pos, pos + len));
        fields[i] = text;
        at += text.length;
      }
    }
    pos += len;
  }
  if (pos !== end) fail(`${end - pos} unexpected trailing byte(s)`);
  return fields;
}

/**
 * The UTF-16 length of `b[from, to)` when it is valid UTF-8 (one unit per 1- to 3-byte sequence, two
 * per 4-byte one; the same bounds as the WHATWG decoder: no overlong form, no surrogate, nothing above
 * U+10FFFF), or -1: anything invalid is left to the decoder, whose U+FFFD rules decide its length.
 */
function utf16Length(b: Uint8Array, from: number, to: number): number {
  let units = 0;
  let i = from;
  while (i < to) {
    const c = b[i]!;
    if (c < 0x80) {
      units++;
      i++;
      continue;
    }
    // The WHATWG decoder's "bytes needed" and the bounds on the byte after the lead.
    let needed: number;
    let lower = 0x80;
    let upper = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) needed = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      needed = 2;
      if (c === 0xe0) lower = 0xa0;
      else if (c === 0xed) upper = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      needed = 3;
      if (c === 0xf0) lower = 0x90;
      else if (c === 0xf4) upper = 0x8f;
    } else return -1;
    if (i + needed >= to) return -1;
    const c1 = b[i + 1]!;
    if (c1 < lower || c1 > upper) return -1;
    for (let j = 2; j <= needed; j++) if ((b[i + j]! & 0xc0) !== 0x80) return -1;
    units += needed === 3 ? 2 : 1;
    i += needed + 1;
  }
  return units;
}
