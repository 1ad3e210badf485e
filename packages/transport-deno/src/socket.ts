/**
 * One connection behind the TransportSocket contract. Plaintext (TCP or Unix) goes straight through
 * the native Deno.Conn: `read()` is a `conn.read()` (pull-based, nothing is read ahead, so no byte
 * can be buffered behind an SSLRequest reply without the core seeing it), `write()` loops over
 * partial writes. `startTls` / `startServerTls` hand the Conn to Deno's node:tls through a Duplex
 * (bridge.ts); from then on reads come from the TLS socket's 'data' events, paused when the consumer
 * falls behind.
 */
import type * as tls from 'node:tls';
import { TLSSocket, connect as tlsConnect } from 'node:tls';
import {
  ChunkQueue,
  type ServerTransportSocket,
  type TlsClientOptions,
  type TlsInfo,
  type TlsServerOptions,
  type TransportSocket,
} from '@pgconn/core';
import { type ConnBridge, connDuplex } from './bridge.ts';
import { abortError, osError, tlsError } from './errors.ts';
import { writeAll } from './io.ts';
import { serverTlsInfo, tlsConnectOptions, tlsInfoOf, tlsServerOptions } from './tls-options.ts';

/** Bytes asked of each native read (the core wants at least 8 KiB). */
const READ_SIZE = 64 * 1024;
/** A native read this small is copied out, and its buffer reused for the next read. */
const COPY_BELOW = 16 * 1024;
/** Above this many queued TLS bytes the TLS socket is paused until the consumer reads. */
const HIGH_WATER = 1024 * 1024;
/** How long close() waits for the peer's answer to close_notify / FIN before cutting. */
const CLOSE_GRACE_MS = 2000;

const isAddr = (a: Deno.Addr): a is Deno.NetAddr => a.transport === 'tcp';

/** Pull-based reads over a node:tls socket's 'data' events (core's ChunkQueue does the queueing). */
class TlsReader {
  private readonly chunks: ChunkQueue;

  /** `linger`: close() waits for the peer's close (server side); a client lets go once flushed. */
  constructor(
    readonly sock: tls.TLSSocket,
    bridge: ConnBridge,
    private readonly linger: boolean,
  ) {
    // Pausing the TLSSocket alone does not stop Deno's node:tls from reading: hold the bridge too.
    this.chunks = new ChunkQueue(
      {
        pause: () => {
          sock.pause();
          bridge.hold();
        },
        resume: () => {
          bridge.release();
          sock.resume();
        },
      },
      HIGH_WATER,
    );
    bridge.room = () => HIGH_WATER - this.chunks.bytes;
    // Deno hands out a fresh Buffer per 'data' event: the view is kept without copying.
    sock.on('data', (chunk: Uint8Array) =>
      this.chunks.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)),
    );
    sock.on('end', () => this.chunks.end(null));
    sock.on('error', (e: Error) => this.chunks.end(tlsError(e)));
    sock.on('close', () => this.chunks.end(null));
  }

  private get error(): Error | null {
    return this.chunks.failure;
  }

  read(): Promise<Uint8Array | null> {
    return this.chunks.read();
  }

  write(bytes: Uint8Array): Promise<void> {
    const s = this.sock;
    if (this.error) return Promise.reject(this.error);
    if (s.destroyed) return Promise.reject(new Error('socket is closed'));
    if (s.write(bytes)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (e?: Error) => {
        s.off('drain', onDrain);
        s.off('close', onClose);
        e ? reject(e) : resolve();
      };
      const onDrain = () => done();
      const onClose = () => done(this.error ?? new Error('socket closed while writing'));
      s.once('drain', onDrain);
      s.once('close', onClose);
    });
  }

  close(): Promise<void> {
    const s = this.sock;
    if (s.destroyed) return Promise.resolve();
    if (this.error) {
      // TLS failed (a record that did not decrypt): no close_notify can follow, so no grace period.
      s.destroy();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => s.destroy(), CLOSE_GRACE_MS);
      s.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      // end() sends close_notify, then the bridge half-closes (FIN). A client then lets go, as libpq's
      // PQfinish does; a server waits for the peer, reading and dropping its data (a held bridge would
      // never see the peer's FIN).
      if (this.linger) s.end();
      else s.end(() => s.destroy());
      this.chunks.unpause();
      s.resume();
    });
  }
}

/**
 * What tls.Server does once a socket it made is secure: from then on a TLS failure (a forged record,
 * an alert) is an 'error' event. Before it, node:tls emits only the internal '_tlsError' for a failure
 * after the handshake and leaves the connection open. tls.connect does this for client sockets.
 */
function releaseControl(s: tls.TLSSocket): void {
  (s as unknown as { _releaseControl?: () => boolean })._releaseControl?.();
}

/** Waits for the handshake of a fresh TLS socket; destroys it on failure or abort. */
function handshake(s: tls.TLSSocket, ready: 'secureConnect' | 'secure', signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      s.off(ready, onReady);
      s.off('error', onError);
      s.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
    };
    const onReady = () => {
      cleanup();
      resolve();
    };
    const onError = (e: Error) => {
      cleanup();
      s.destroy();
      reject(tlsError(e));
    };
    const onClose = () => onError(new Error('SSL SYSCALL error: EOF detected'));
    const onAbort = () => onError(abortError());
    if (signal?.aborted) return onAbort();
    s.once(ready, onReady);
    s.once('error', onError);
    s.once('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export class DenoSocket implements TransportSocket, ServerTransportSocket {
  readonly remoteAddress: string;
  readonly remotePort: number;
  private readonly conn: Deno.Conn;
  private tls: TlsReader | null = null;
  private reading = false;
  private closed = false;
  /** A read buffer whose bytes were copied out, reused by the next read. */
  private spare: Uint8Array | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(conn: Deno.Conn) {
    this.conn = conn;
    const remote = conn.remoteAddr;
    this.remoteAddress = isAddr(remote) ? remote.hostname : '';
    this.remotePort = isAddr(remote) ? remote.port : 0;
  }

  /** The TLS socket once TLS is active (for diagnostics). */
  get tlsSocket(): tls.TLSSocket | null {
    return this.tls?.sock ?? null;
  }

  async read(): Promise<Uint8Array | null> {
    if (this.tls) return this.tls.read();
    if (this.reading) throw new Error('read() already pending');
    if (this.closed) return null;
    this.reading = true;
    const buf = this.spare ?? new Uint8Array(READ_SIZE);
    this.spare = null;
    try {
      const n = await this.conn.read(buf);
      if (n === null) return null;
      if (n < COPY_BELOW) {
        // Small chunk: hand out a right-sized copy, so a view kept by the core does not pin 64 KiB.
        this.spare = buf;
        return buf.slice(0, n);
      }
      return buf.subarray(0, n);
    } catch (e) {
      if (this.closed) return null; // closed while the read was pending
      throw osError(e);
    } finally {
      this.reading = false;
    }
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.tls) return this.tls.write(bytes);
    if (this.closed) return Promise.reject(new Error('socket is closed'));
    // Serialised: two interleaved partial-write loops would mix their bytes.
    const next = this.writing
      .then(() => writeAll(this.conn, bytes))
      .catch((e) => {
        throw osError(e);
      });
    this.writing = next.catch(() => {});
    return next;
  }

  startTls(options: TlsClientOptions): Promise<TlsInfo> {
    return this.upgradeClient(options);
  }

  /** Client STARTTLS (after 'S'), also used for direct TLS on a fresh connection. */
  async upgradeClient(options: TlsClientOptions, signal?: AbortSignal): Promise<TlsInfo> {
    this.beforeTls('startTls');
    const opts = tlsConnectOptions(options); // UnsupportedError before anything is sent
    const bridge = connDuplex(this.conn);
    const s = tlsConnect({ ...opts, socket: bridge.duplex });
    await this.settle(handshake(s, 'secureConnect', signal));
    this.tls = new TlsReader(s, bridge, false);
    return tlsInfoOf(s);
  }

  async startServerTls(options: TlsServerOptions, pending?: Uint8Array): Promise<TlsInfo> {
    this.beforeTls('startServerTls');
    // UnsupportedError (client certificates requested) before the Conn is handed to the bridge.
    const opts = tlsServerOptions(options);
    const bridge = connDuplex(this.conn, pending);
    const s = new TLSSocket(bridge.duplex, { isServer: true, ...opts });
    await this.settle(handshake(s, 'secure'));
    releaseControl(s);
    this.tls = new TlsReader(s, bridge, true);
    return serverTlsInfo(s);
  }

  /** A failed handshake destroyed the TLS socket, and with it the Conn. */
  private async settle(done: Promise<void>): Promise<void> {
    try {
      await done;
    } catch (e) {
      this.closed = true;
      throw e;
    }
  }

  private beforeTls(what: string): void {
    if (this.tls) throw new Error(`${what}(): TLS is already active`);
    if (this.reading) throw new Error(`${what}() while a read is pending`);
    if (this.closed) throw new Error(`${what}(): socket is closed`);
    this.spare = null; // the bridge reads from here on: the plaintext phase's 64 KiB is not needed again
  }

  async close(): Promise<void> {
    if (this.tls) return this.tls.close();
    if (this.closed) return;
    this.closed = true;
    await this.writing;
    try {
      this.conn.close();
    } catch {
      // already closed by the runtime
    }
  }

  destroy(): void {
    if (this.tls) {
      this.tls.sock.destroy();
      return;
    }
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}
