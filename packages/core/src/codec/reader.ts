/**
 * Reads fields from one message body. Every read is bounds-checked and a truncated or malformed
 * body ends in a ProtocolError naming the message, never a RangeError from a DataView.
 */
import { ProtocolError } from '../errors.ts';

// ignoreBOM: text that starts with U+FEFF must keep it.
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });

/** Decodes UTF-8; short ASCII runs avoid TextDecoder's call overhead. */
export function decodeText(buf: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n <= 24) {
    let s = '';
    for (let i = start; i < end; i++) {
      const c = buf[i]!;
      if (c >= 0x80) return decoder.decode(buf.subarray(start, end));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return decoder.decode(buf.subarray(start, end));
}

export class BodyReader {
  readonly buf: Uint8Array;
  private readonly view: DataView;
  pos: number;
  private readonly end: number;
  private readonly what: string;

  /** `what` names the message in error texts. */
  constructor(body: Uint8Array, what: string) {
    this.buf = body;
    this.view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    this.pos = 0;
    this.end = body.length;
    this.what = what;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  fail(reason: string): never {
    throw new ProtocolError(`invalid ${this.what} message: ${reason}`);
  }

  private need(n: number): void {
    if (this.end - this.pos < n) this.fail('truncated');
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  i16(): number {
    this.need(2);
    const v = this.view.getInt16(this.pos);
    this.pos += 2;
    return v;
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  i32(): number {
    this.need(4);
    const v = this.view.getInt32(this.pos);
    this.pos += 4;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  /** A zero-copy view of the next `n` bytes. */
  bytes(n: number): Uint8Array {
    if (n < 0) this.fail(`negative length ${n}`);
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** A zero-copy view of everything left. */
  rest(): Uint8Array {
    const v = this.buf.subarray(this.pos, this.end);
    this.pos = this.end;
    return v;
  }

  cstring(): string {
    const nul = this.buf.indexOf(0, this.pos);
    if (nul === -1 || nul >= this.end) this.fail('unterminated string');
    const s = decodeText(this.buf, this.pos, nul);
    this.pos = nul + 1;
    return s;
  }

  /** Fails unless the whole body was consumed: trailing bytes mean a framing disagreement. */
  done(): void {
    if (this.pos !== this.end) this.fail(`${this.end - this.pos} unexpected trailing byte(s)`);
  }
}
