/**
 * Streaming reader: takes chunks of any size and split, hands out whole messages as zero-copy views.
 *
 * - When nothing is buffered, a pushed chunk is parsed in place (no copy); only a partial message
 *   left at the end of a chunk is copied into the framer's own buffer. The next chunk gives that
 *   message only the bytes that complete it; the rest of the chunk is again parsed in place. So each
 *   chunk costs at most one message's copy, not a copy of the whole stream (TLS hands over 16 KiB
 *   records, where messages straddle nearly every boundary).
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
  /**
   * The part of the last pushed chunk after the message it completed in `buf`; parsed in place once
   * `buf` is drained. Only ever set while `buf` holds exactly one whole message.
   */
  private tail: Uint8Array | null = null;
  /** Our last own buffer while parsing in place, reused for the next partial message. */
  private spare: Uint8Array | null = null;
  private readonly maxLength: number;

  constructor(options: FramerOptions = {}) {
    this.maxLength = options.maxMessageLength ?? DEFAULT_MAX;
  }

  /** Number of bytes received and not yet consumed. */
  get buffered(): number {
    return this.end - this.start + (this.tail?.length ?? 0);
  }

  push(chunk: Uint8Array): void {
    const n = chunk.length;
    if (n === 0) return;
    if (this.tail) this.flatten();
    const have = this.end - this.start;
    if (have === 0) {
      // Parse in place; the chunk is not copied.
      this.inPlace(chunk);
      return;
    }
    // A partial message is buffered: give it the bytes that complete it (the header first, to learn
    // its length), and keep the rest of the chunk to parse in place. A length that next() will
    // reject, or a buffer that already holds whole messages (pushed without draining), takes all.
    let used = Math.min(n, Math.max(0, 5 - have));
    if (used > 0) this.append(chunk.subarray(0, used));
    if (this.end - this.start >= 5) {
      const len = this.readLength(this.start + 1);
      const missing = len + 1 - (this.end - this.start);
      const take = len >= 4 && len <= this.maxLength && missing > 0 ? Math.min(missing, n - used) : n - used;
      if (take > 0) this.append(chunk.subarray(used, used + take));
      used += take;
    }
    if (used < n) this.tail = chunk.subarray(used);
  }

  private inPlace(chunk: Uint8Array): void {
    if (this.owned) this.spare = this.buf;
    this.buf = chunk;
    this.start = 0;
    this.end = chunk.length;
    this.owned = false;
  }

  /** Moves the tail into `buf`: in place when `buf` is drained, else by copying it behind. */
  private flatten(): void {
    const tail = this.tail!;
    this.tail = null;
    if (this.start === this.end) this.inPlace(tail);
    else this.append(tail);
  }

  /** Appends bytes behind the buffered ones, in our own buffer (grown by doubling, compacted). */
  private append(chunk: Uint8Array): void {
    const n = chunk.length;
    if (n === 0) return;
    const have = this.end - this.start;
    const need = have + n;
    if (this.owned && this.end + n <= this.buf.length) {
      this.buf.set(chunk, this.end);
      this.end += n;
      return;
    }
    if (this.owned && need <= this.buf.length) {
      this.buf.copyWithin(0, this.start, this.end);
    } else {
      let next: Uint8Array;
      if (!this.owned && this.spare && this.spare.length >= need) next = this.spare;
      else {
        let cap = Math.max(MIN_OWN_CAPACITY, this.owned ? this.buf.length * 2 : 0);
        while (cap < need) cap *= 2;
        next = new Uint8Array(cap);
      }
      this.spare = null;
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
    if (this.tail) this.flatten();
    if (this.start === this.end) return -1;
    return this.buf[this.start++]!;
  }

  /** Peeks at the next byte without consuming it, or -1 if none. */
  peekByte(): number {
    if (this.tail) this.flatten();
    return this.start === this.end ? -1 : this.buf[this.start]!;
  }

  /** The length word of the next typed message once its 5-byte header has arrived (before the body), or null. */
  peekLength(): number | null {
    if (this.tail) this.flatten();
    return this.end - this.start < 5 ? null : this.readLength(this.start + 1);
  }

  /** Consumes every buffered byte (for a hand-over); a view valid until the next `push()`. */
  rest(): Uint8Array {
    if (this.tail) this.flatten();
    const v = this.buf.subarray(this.start, this.end);
    this.start = this.end = 0;
    this.buf = new Uint8Array(0);
    this.spare = null;
    this.owned = false;
    return v;
  }

  private readLength(at: number): number {
    const b = this.buf;
    return (b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]! | 0;
  }

  /** The next typed message, or null when it has not fully arrived. Throws ProtocolError on a bad length. */
  next(): Frame | null {
    // The buffered message is gone: continue in the rest of the chunk, in place.
    if (this.tail && this.start === this.end) {
      this.inPlace(this.tail);
      this.tail = null;
    }
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
    // push() split the chunk by typed framing; untyped packets see the bytes contiguous.
    if (this.tail) this.flatten();
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
