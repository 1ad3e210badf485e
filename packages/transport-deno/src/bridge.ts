/**
 * A node:stream Duplex over a native Deno.Conn, so that Deno's node:tls can run TLS (client or
 * server) on a connection that `Deno.connect` or `Deno.listen` opened. The Conn is consumed: from
 * here on only the Duplex reads and writes it, and destroying the Duplex closes it.
 *
 * Reads are pulled: the Conn is read only while the TLS layer wants more ciphertext (backpressure
 * through `push()`'s return value). node:tls may keep a pushed chunk queued, so a large read is handed
 * over and the next one gets a fresh buffer; a small one is pushed as a right-sized copy and its
 * buffer reused (a kept 100-byte view must not pin 64 KiB).
 *
 * Deno's node:tls keeps reading its transport while the TLSSocket is paused (measured: 33 MB
 * decrypted and queued behind a paused socket, a 192 MB COPY held in memory). So the reader holds
 * the bridge itself: `hold()` stops reading the Conn until `release()`.
 */
import { Duplex } from 'node:stream';
import { writeAll } from './io.ts';

/**
 * Read buffer sizes. Two costs pull apart here:
 * - A read is always pending on an idle connection, so its buffer is what an idle connection costs.
 * - Deno's node:tls turns each chunk pushed into it into one plaintext chunk, at a fixed cost per
 *   chunk, so a bulk transfer wants reads as large as the kernel can fill.
 *
 * The streaming size doubles up to MAX_READ while reads fill it and halves while they come back small
 * (at least MIN_READ). Two bounds apply on top of it:
 * - After a read that did not fill its buffer (the kernel had nothing more), the connection may now
 *   sit idle: the next read asks for at most PROBE_READ, and only once that one fills does the
 *   streaming size apply again. So an idle connection pins at most PROBE_READ, even right after a
 *   bulk transfer.
 * - A read asks for no more than the reader has room for before it pauses (`room`), but at least
 *   BUSY_READ: while the consumer is the bottleneck, large reads buy nothing. Measured with a slow
 *   consumer (1 GiB, Deno 2.9.6): peak RSS above idle 71.5 MiB with 1 MiB reads regardless of room,
 *   56–58 MiB with this bound or with 64 KiB reads.
 *
 * Measured (Deno 2.9.6, pgconn serve → 3 GB over TLS on loopback, client CPU per GB, three alternating
 * rounds): 64 KiB reads 1.23–1.42 s/GB, this policy 0.76–1.00, 1 MiB reads whatever the room 0.71–1.17.
 */
const MIN_READ = 4 * 1024;
const PROBE_READ = 16 * 1024;
const BUSY_READ = 64 * 1024;
const MAX_READ = 1024 * 1024;
/** A read this small is pushed as a copy (when it used at most a quarter of its buffer). */
const COPY_BELOW = 16 * 1024;

/**
 * `pending`: bytes already read from the Conn that belong to the TLS stream (the ClientHello of a
 * direct TLS connection, read to see its first byte); they are delivered before anything else.
 */
export interface ConnBridge {
  duplex: Duplex;
  /** Stops reading the Conn (after a read already under way) until `release()`. */
  hold(): void;
  release(): void;
  /** Set by the reader: bytes it takes before it pauses. Reads past BUSY_READ stay within it. */
  room: (() => number) | null;
}

export function connDuplex(conn: Deno.Conn, pending?: Uint8Array): ConnBridge {
  let head: Uint8Array | null = pending && pending.length > 0 ? pending : null;
  let pumping = false;
  let held = false;
  /** The TLS layer asked for more while held. */
  let wanted = false;

  const duplex: Duplex = new Duplex({
    read() {
      if (head) {
        const h = head;
        head = null;
        if (!this.push(h)) return;
      }
      if (held) {
        wanted = true;
        return;
      }
      if (pumping) return;
      pumping = true;
      void pump();
    },
    write(chunk: Uint8Array, _encoding, callback) {
      writeAll(conn, chunk).then(
        () => callback(),
        (e: Error) => callback(e),
      );
    },
    final(callback) {
      // After TLS wrote close_notify: half-close (FIN), and keep reading the peer's reply.
      conn.closeWrite().then(
        () => callback(),
        () => callback(),
      );
    },
    destroy(error, callback) {
      try {
        conn.close();
      } catch {
        // already closed
      }
      callback(error);
    },
  });

  let size = MIN_READ;
  /** The last read did not fill its buffer: the peer may have nothing more to send for a while. */
  let drained = true;
  let spare: Uint8Array | null = null;

  async function pump(): Promise<void> {
    try {
      for (;;) {
        if (held) {
          wanted = true;
          return;
        }
        const limit = drained ? PROBE_READ : Math.max(BUSY_READ, bridge.room?.() ?? MAX_READ);
        const want = Math.min(size, limit);
        const buf = spare?.length === want ? spare : new Uint8Array(want);
        spare = null;
        const n = await conn.read(buf);
        if (duplex.destroyed) return;
        if (n === null) {
          duplex.push(null);
          return;
        }
        let chunk: Uint8Array;
        if (n < COPY_BELOW && n <= buf.length >>> 2) {
          chunk = buf.slice(0, n);
          spare = buf;
        } else chunk = buf.subarray(0, n);
        drained = n < buf.length;
        if (!drained) size = Math.min(Math.max(size, n) * 2, MAX_READ);
        else if (n <= size >>> 2) size = Math.max(size >>> 1, MIN_READ);
        if (!duplex.push(chunk)) return; // resumes on the next read()
      }
    } catch (e) {
      if (!duplex.destroyed) duplex.destroy(e as Error);
    } finally {
      pumping = false;
    }
  }

  const bridge: ConnBridge = {
    duplex,
    room: null,
    hold: () => {
      held = true;
    },
    release: () => {
      held = false;
      if (!wanted || pumping || duplex.destroyed) return;
      wanted = false;
      pumping = true;
      void pump();
    },
  };
  return bridge;
}
