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
 * Read buffer sizes. A read is always pending on an idle connection, so its buffer is what an idle
 * connection costs: it shrinks to MIN_READ while reads come back small (handshakes, queries) and
 * doubles up to MAX_READ while they fill it (bulk transfers).
 */
const MIN_READ = 4 * 1024;
const MAX_READ = 64 * 1024;

/**
 * `pending`: bytes already read from the Conn that belong to the TLS stream (the ClientHello of a
 * direct TLS connection, read to see its first byte); they are delivered before anything else.
 */
export interface ConnBridge {
  duplex: Duplex;
  /** Stops reading the Conn (after a read already under way) until `release()`. */
  hold(): void;
  release(): void;
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
  let spare: Uint8Array | null = null;

  async function pump(): Promise<void> {
    try {
      for (;;) {
        if (held) {
          wanted = true;
          return;
        }
        const buf = spare?.length === size ? spare : new Uint8Array(size);
        spare = null;
        const n = await conn.read(buf);
        if (duplex.destroyed) return;
        if (n === null) {
          duplex.push(null);
          return;
        }
        let chunk: Uint8Array;
        if (n <= buf.length >>> 2) {
          chunk = buf.slice(0, n);
          spare = buf;
        } else chunk = buf.subarray(0, n);
        if (n === buf.length) size = Math.min(size * 2, MAX_READ);
        else if (n <= size >>> 2) size = Math.max(size >>> 1, MIN_READ);
        if (!duplex.push(chunk)) return; // resumes on the next read()
      }
    } catch (e) {
      if (!duplex.destroyed) duplex.destroy(e as Error);
    } finally {
      pumping = false;
    }
  }

  return {
    duplex,
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
}
