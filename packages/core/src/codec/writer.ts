/**
 * Encodes messages into one growable buffer. A message is opened with `begin()` (type byte and a
 * length placeholder) and closed with `end()`, which back-patches the length, so encoders never
 * compute sizes up front. Several messages can be written before `take()`: that is how writes are
 * coalesced into one socket write.
 */
import { ProtocolError } from '../errors.ts';

const encoder = new TextEncoder();

export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;
  /** Offset of the open message's length word, or -1. */
  private lengthAt = -1;
  /** Where the open message starts (its type byte, if any). */
  private messageStart = 0;

  constructor(initialCapacity = 1024) {
    this.buf = new Uint8Array(initialCapacity);
    this.view = new DataView(this.buf.buffer);
  }

  /** Bytes written and not yet taken. */
  get length(): number {
    return this.pos;
  }

  private ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  /** Opens a typed message: type byte, then a length word patched by `end()`. */
  begin(type: number): this {
    if (this.lengthAt !== -1) throw new Error('Writer: message already open');
    this.ensure(5);
    this.messageStart = this.pos;
    this.buf[this.pos++] = type;
    this.lengthAt = this.pos;
    this.pos += 4;
    return this;
  }

  /** Opens an untyped packet (startup-phase requests): a length word patched by `end()`. */
  beginUntyped(): this {
    if (this.lengthAt !== -1) throw new Error('Writer: message already open');
    this.ensure(4);
    this.messageStart = this.pos;
    this.lengthAt = this.pos;
    this.pos += 4;
    return this;
  }

  /** Discards the open message (an encoder failed half-way); earlier messages stay. */
  abort(): this {
    if (this.lengthAt !== -1) {
      this.pos = this.messageStart;
      this.lengthAt = -1;
    }
    return this;
  }

  /** Closes the open message, writing its length (which counts itself but not the type byte). */
  end(): this {
    if (this.lengthAt === -1) throw new Error('Writer: no message open');
    this.view.setInt32(this.lengthAt, this.pos - this.lengthAt);
    this.lengthAt = -1;
    return this;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }

  i16(v: number): this {
    this.ensure(2);
    this.view.setInt16(this.pos, v);
    this.pos += 2;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
    return this;
  }

  i32(v: number): this {
    this.ensure(4);
    this.view.setInt32(this.pos, v);
    this.pos += 4;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** UTF-8 text without terminator. */
  text(s: string): this {
    const n = s.length;
    // ASCII fast path: most identifiers and parameter names are short ASCII.
    if (n < 128) {
      this.ensure(n);
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        this.buf[this.pos + i] = c;
      }
      if (i === n) {
        this.pos += n;
        return this;
      }
    }
    this.ensure(n * 3);
    const { written } = encoder.encodeInto(s, this.buf.subarray(this.pos));
    this.pos += written;
    return this;
  }

  /** A NUL-terminated string. The protocol cannot carry an embedded NUL, so that is refused. */
  cstring(s: string): this {
    if (s.includes('\0')) {
      // Drop the half-written message so the writer stays usable for the next one.
      this.abort();
      throw new ProtocolError('string contains a NUL byte and cannot be sent');
    }
    return this.text(s).u8(0);
  }

  /** Returns the bytes written so far and starts afresh. The result is owned by the caller. */
  take(): Uint8Array {
    if (this.lengthAt !== -1) throw new Error('Writer: message still open');
    const n = this.pos;
    this.pos = 0;
    // Hand a large buffer over instead of copying it; copy small ones to keep our capacity.
    if (n > this.buf.length >>> 1) {
      const out = this.buf.subarray(0, n);
      this.buf = new Uint8Array(this.buf.length);
      this.view = new DataView(this.buf.buffer);
      return out;
    }
    return this.buf.slice(0, n);
  }
}
