/**
 * Streaming reader: takes chunks of any size and split, hands out whole messages as zero-copy views.
 *
 * - When nothing is buffered, a pushed chunk is parsed in place (no copy); only a partial message
 *   left at the end of a chunk is copied into the framer's own buffer.
 * - The own buffer grows by doubling, bounded by the bytes actually received and by the length the
 *   header announced, so an untrusted length never allocates memory before the bytes arrive, and a
 *   huge message is gathered in amortised O(n).
 * - Views returned by `next()`, `nextUntyped()` and `rest()` stay valid until the next `push()`.
 *
 * The same buffer serves every phase of a connection: unframed one-byte replies (`readByte`),
 * untyped startup-phase packets (`nextUntyped`) and typed messages (`next`).
 */
import { ProtocolError } from '../errors.ts';

export interface Frame {
  /** Message type byte. */
  type: number;
  /** Body without type byte and length word; a view valid until the next `push()`. */
  body: Uint8Array;
}

export interface FramerOptions {
  /** Largest accepted length word (which counts itself). Default 1 GiB - 1, PostgreSQL's MaxAllocSize. */
  maxMessageLength?: number;
}

const DEFAULT_MAX = 0x3fff_ffff;
const MIN_OWN_CAPACITY = 16 * 1024;

const describeType = (t: number): string =>
  t >= 0x20 && t < 0x7f ? `"${String.fromCharCode(t)}"` : `0x${t.toString(16).padStart(2, '0')}`;

export class Framer {
  private buf: Uint8Array = new Uint8Array(0);
  private start = 0;
  private end = 0;
  /** Whether `buf` is ours (may be written into) or a caller's chunk (read-only to us). */
  private owned = false;
  private readonly maxLength: number;

  constructor(options: FramerOptions = {}) {
    this.maxLength = options.maxMessageLength ?? DEFAULT_MAX;
  }

  /** Number of bytes received and not yet consumed. */
  get buffered(): number {
    return this.end - this.start;
  }

  push(chunk: Uint8Array): void {
    const n = chunk.length;
    if (n === 0) return;
    const have = this.end - this.start;
    if (have === 0) {
      // Parse in place; the chunk is not copied.
      this.buf = chunk;
      this.start = 0;
      this.end = n;
      this.owned = false;
      return;
    }
    const need = have + n;
    if (this.owned && this.end + n <= this.buf.length) {
      this.buf.set(chunk, this.end);
      this.end += n;
      return;
    }
    if (this.owned && need <= this.buf.length) {
      this.buf.copyWithin(0, this.start, this.end);
    } else {
      let cap = Math.max(MIN_OWN_CAPACITY, this.owned ? this.buf.length * 2 : 0);
      while (cap < need) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.buf.subarray(this.start, this.end));
      this.buf = next;
      this.owned = true;
    }
    this.start = 0;
    this.end = have;
    this.buf.set(chunk, this.end);
    this.end += n;
  }

  /** Consumes one raw byte (the unframed replies to SSLRequest/GSSENCRequest), or -1 if none. */
  readByte(): number {
    if (this.start === this.end) return -1;
    return this.buf[this.start++]!;
  }

  /** Peeks at the next byte without consuming it, or -1 if none. */
  peekByte(): number {
    return this.start === this.end ? -1 : this.buf[this.start]!;
  }

  /** The length word of the next typed message once its 5-byte header has arrived (before the body), or null. */
  peekLength(): number | null {
    return this.end - this.start < 5 ? null : this.readLength(this.start + 1);
  }

  /** Consumes every buffered byte (for a hand-over); a view valid until the next `push()`. */
  rest(): Uint8Array {
    const v = this.buf.subarray(this.start, this.end);
    this.start = this.end = 0;
    this.buf = new Uint8Array(0);
    this.owned = false;
    return v;
  }

  private readLength(at: number): number {
    const b = this.buf;
    return (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]! | 0;
  }

  /** The next typed message, or null when it has not fully arrived. Throws ProtocolError on a bad length. */
  next(): Frame | null {
    const start = this.start;
    if (this.end - start < 5) return null;
    const type = this.buf[start]!;
    const len = this.readLength(start + 1);
    if (len < 4)
      throw new ProtocolError(`invalid message length ${len} for message type ${describeType(type)}`);
    if (len > this.maxLength) {
      throw new ProtocolError(
        `message length ${len} for message type ${describeType(type)} exceeds the limit of ${this.maxLength}`,
      );
    }
    const total = len + 1;
    if (this.end - start < total) return null;
    this.start = start + total;
    return { type, body: this.buf.subarray(start + 5, start + total) };
  }

  /**
   * The next untyped packet (startup phase: length word, then body), or null when incomplete.
   * Returns the body after the length word. `minLength`/`maxLength` bound the length word.
   */
  nextUntyped(minLength: number, maxLength: number): Uint8Array | null {
    const start = this.start;
    if (this.end - start < 4) return null;
    const len = this.readLength(start);
    if (len < minLength || len > maxLength)
      throw new ProtocolError(`invalid length of startup packet: ${len}`);
    if (this.end - start < len) return null;
    this.start = start + len;
    return this.buf.subarray(start + 4, start + len);
  }
}
