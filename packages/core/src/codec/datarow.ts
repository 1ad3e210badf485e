/**
 * DataRow straight to text, for drivers that want strings (what node-postgres's parser produces).
 * Decoding each field separately costs one TextDecoder call per field; instead the whole body is
 * decoded once and fields are cut out with `substring`. That is exact whenever the decoded string
 * has as many UTF-16 units as the body has bytes: then every byte became exactly one unit (ASCII, or
 * a lone invalid byte → U+FFFD, which a per-field decode gives too), so byte offsets are string
 * offsets. Any multi-byte character breaks the equality, and the row is decoded field by field.
 * Bounds checks and errors match decodeBackend's DataRow.
 */
import { ProtocolError } from '../errors.ts';

// ignoreBOM: a value that starts with U+FEFF must keep it.
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });

const fail = (reason: string): never => {
  throw new ProtocolError(`invalid DataRow message: ${reason}`);
};

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
  let pos = 2;
  for (let i = 0; i < count; i++) {
    if (end - pos < 4) fail('truncated');
    const len = (body[pos]! << 24) | (body[pos + 1]! << 16) | (body[pos + 2]! << 8) | body[pos + 3]!;
    pos += 4;
    if (len < 0) {
      if (len !== -1) fail(`invalid field length ${len}`);
      fields[i] = null;
    } else {
      if (end - pos < len) fail('truncated');
      fields[i] = aligned ? whole.substring(pos, pos + len) : decoder.decode(body.subarray(pos, pos + len));
      pos += len;
    }
  }
  if (pos !== end) fail(`${end - pos} unexpected trailing byte(s)`);
  return fields;
}
