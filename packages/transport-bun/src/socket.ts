/// <reference path="./bun.d.ts" />
/**
 * A Bun native socket (Bun.connect / Bun.listen) behind the TransportSocket contract:
 * - read(): pull-based over the `data` handler with a queue; the socket is paused when the consumer
 *   falls behind. Bun hands every `data` call a fresh buffer (measured on 1.4.5: one ArrayBuffer per
 *   chunk, never rewritten), so chunks are queued without a copy.
 * - write(): Bun's native `write` accepts only what fits and returns that count; the rest is written
 *   from the `drain` handler, and the promise resolves once every byte was accepted.
 * - startTls()/startServerTls(): native `upgradeTLS` on the same socket. It returns [raw, tls]: the raw
 *   socket keeps receiving the ciphertext, so its handlers are muted from the moment of the upgrade.
 * - One server path uses Bun's node:tls: a direct TLS connection whose ClientHello was already read
 *   (to look at its first byte) — native upgradeTLS cannot be handed bytes that were already consumed,
 *   so a node:tls TLSSocket runs over a small Duplex fed from the native socket.
 * - close(): close_notify (TLS) then FIN. The client role does not wait for the server to close its
 *   end, as libpq's PQfinish does not; the server role waits for the client's FIN. destroy(): `terminate()`.
 */
import { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import {
  ChunkQueue,
  type ServerTransportSocket,
  type TlsClientOptions,
  type TlsInfo,
  type TlsServerOptions,
  type TransportSocket,
} from '@pgconn/core';
import {
  isHandshakeFailure,
  nativeClientTls,
  nativeServerTls,
  nativeTlsInfo,
  nodeServerTls,
  nodeTlsInfo,
  tlsError,
} from './tls-options.ts';

/** Above this many queued bytes the socket is paused until the consumer reads. */
const HIGH_WATER = 1024 * 1024;

/** Who currently owns the byte stream: the raw socket, a native TLS socket, or node:tls over the raw one. */
type Phase = 'plain' | 'tls' | 'node';

interface PendingWrite {
  bytes: Uint8Array;
  resolve: () => void;
  reject: (e: Error) => void;
}

const disconnected = (): Error =>
  Object.assign(
    new Error('Client network socket disconnected before secure TLS connection was established'),
    {
      code: 'ECONNRESET',
    },
  );

export class BunSocket implements TransportSocket, ServerTransportSocket {
  private native: BunNative.Socket | null = null;
  private phase: Phase = 'plain';
  private secure: tls.TLSSocket | null = null;
  private duplex: Duplex | null = null;

  /** Received chunks until read(); pauses whichever source is active (native or node:tls). */
  private readonly chunks = new ChunkQueue(
    { pause: () => this.pauseSource(), resume: () => this.resumeSource() },
    HIGH_WATER,
  );

  private writes: PendingWrite[] = [];
  private closed = false;
  private readonly closeWaiters: Array<() => void> = [];
  private closing: Promise<void> | null = null;
  /** A TLS handshake in progress (client or native server upgrade). */
  private handshake: { resolve: (info: TlsInfo) => void; reject: (e: Error) => void } | null = null;

  remoteAddress = '';
  remotePort = 0;

  /**
   * @param role 'client' closes like libpq's PQfinish (close_notify and FIN sent, the socket released
   *   without waiting for the peer); 'server' waits for the client's FIN (up to 2 s), so an
   *   ErrorResponse is not cut off by a reset while the client is still sending.
   */
  constructor(private readonly role: 'client' | 'server' = 'client') {}

  /** @internal Handlers for the plain socket (client side; the listener dispatches to the same methods). */
  readonly rawHandlers: BunNative.SocketHandler = {
    data: (_s, d) => this.onRawData(d),
    drain: () => this.onRawDrain(),
    end: () => this.onRawEnd(),
    close: (_s, e) => this.onRawClose(e),
    error: (_s, e) => this.onRawError(e),
  };

  /** @internal Adopts the native socket once it is open. */
  attach(native: BunNative.Socket): void {
    this.native = native;
    this.remoteAddress = native.remoteAddress ?? '';
    this.remotePort = native.remotePort ?? 0;
  }

  /* ----------------------------------------------------------------------------------------------- */
  /* Events                                                                                           */
  /* ----------------------------------------------------------------------------------------------- */

  /** @internal */
  onRawData(d: Uint8Array): void {
    if (this.phase === 'plain') this.push(d);
    else if (this.phase === 'node' && this.duplex && !this.duplex.push(d)) this.native?.pause();
    // phase 'tls': ciphertext, already fed to the TLS socket by Bun.
  }

  /** @internal */
  onRawDrain(): void {
    if (this.phase !== 'tls') this.flushWrites();
  }

  /** @internal */
  onRawEnd(): void {
    if (this.phase === 'plain') this.finish(null);
    else if (this.phase === 'node') this.duplex?.push(null);
  }

  /** @internal */
  onRawError(e: Error): void {
    if (this.phase === 'plain') this.finish(tlsError(e));
    else if (this.phase === 'node') this.duplex?.destroy(e);
  }

  /** @internal */
  onRawClose(e?: Error): void {
    if (this.phase === 'tls') return; // the TLS socket reports its own close
    if (this.phase === 'node') this.duplex?.push(null);
    this.onClosed(e);
  }

  /** @internal Handlers for a direct TLS connection (client): TLS from the first byte. */
  directTlsHandlers(): BunNative.SocketHandler {
    this.phase = 'tls';
    return this.tlsHandlers();
  }

  /** @internal Resolves with the TlsInfo of the next handshake (set up before connecting with TLS). */
  expectHandshake(): Promise<TlsInfo> {
    return new Promise((resolve, reject) => {
      this.handshake = { resolve, reject };
    });
  }

  private tlsHandlers(): BunNative.SocketHandler {
    return {
      data: (_s, d) => this.push(d),
      drain: () => this.flushWrites(),
      end: () => this.finish(null),
      error: (_s, e) => {
        const err = tlsError(e);
        const h = this.handshake;
        this.handshake = null;
        if (h) h.reject(err);
        this.finish(err);
      },
      close: (_s, e) => {
        const h = this.handshake;
        this.handshake = null;
        if (h) h.reject(e ? tlsError(e) : disconnected());
        this.onClosed(e);
      },
      handshake: (s, _ok, error) => this.onHandshake(s, error),
    };
  }

  private onHandshake(s: BunNative.Socket, error: (Error & { code?: string }) | null): void {
    const h = this.handshake;
    if (!h) return; // renegotiation or a late callback: nothing to report
    this.handshake = null;
    if (error && isHandshakeFailure(error)) {
      h.reject(tlsError(error));
      return;
    }
    h.resolve(nativeTlsInfo(s, error));
  }

  private onClosed(e?: Error): void {
    if (this.closed) return;
    this.closed = true;
    const err = e ? tlsError(e) : null;
    const h = this.handshake;
    this.handshake = null;
    if (h) h.reject(err ?? disconnected());
    this.finish(err);
    const pending = this.writes.splice(0);
    for (const w of pending) w.reject(err ?? new Error('socket closed while writing'));
    for (const w of this.closeWaiters.splice(0)) w();
  }

  /* ----------------------------------------------------------------------------------------------- */
  /* Reading                                                                                          */
  /* ----------------------------------------------------------------------------------------------- */

  private push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
  }

  private pauseSource(): void {
    if (this.phase === 'node') this.secure?.pause();
    else this.native?.pause();
  }

  private resumeSource(): void {
    if (this.phase === 'node') this.secure?.resume();
    else this.native?.resume();
  }

  private finish(error: Error | null): void {
    this.chunks.end(error);
  }

  private get ended(): boolean {
    return this.chunks.ended;
  }

  private get error(): Error | null {
    return this.chunks.failure;
  }

  read(): Promise<Uint8Array | null> {
    return this.chunks.read();
  }

  /* ----------------------------------------------------------------------------------------------- */
  /* Writing                                                                                          */
  /* ----------------------------------------------------------------------------------------------- */

  write(bytes: Uint8Array): Promise<void> {
    if (this.closed || !this.native) return Promise.reject(this.error ?? new Error('socket is closed'));
    if (bytes.length === 0) return Promise.resolve();
    if (this.phase === 'node') return this.writeNode(bytes);
    return new Promise((resolve, reject) => {
      this.writes.push({ bytes, resolve, reject });
      if (this.writes.length === 1) this.flushWrites();
    });
  }

  /** Writes queued bytes until the runtime stops accepting them; `drain` calls it again. */
  private flushWrites(): void {
    const s = this.native;
    while (this.writes.length > 0 && s) {
      const w = this.writes[0]!;
      const n = s.write(w.bytes);
      if (n < 0) {
        this.writes.shift();
        w.reject(this.error ?? new Error('socket is closed'));
        continue;
      }
      if (n >= w.bytes.length) {
        this.writes.shift();
        w.resolve();
        continue;
      }
      // Partial write: keep the rest (a view of the caller's bytes) for the next drain.
      w.bytes = w.bytes.subarray(n);
      return;
    }
  }

  private writeNode(bytes: Uint8Array): Promise<void> {
    const s = this.secure!;
    if (s.destroyed) return Promise.reject(this.error ?? new Error('socket is closed'));
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

  /** Writes straight to the native socket (node:tls's ciphertext in phase 'node'). */
  private writeRaw(bytes: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(new Error('socket is closed'));
    return new Promise((resolve, reject) => {
      this.writes.push({ bytes, resolve, reject });
      if (this.writes.length === 1) this.flushWrites();
    });
  }

  /* ----------------------------------------------------------------------------------------------- */
  /* TLS                                                                                              */
  /* ----------------------------------------------------------------------------------------------- */

  /** Stops reading the plain socket so TLS can take it over; refuses if plaintext is still queued. */
  private releaseForTls(what: string, queuedError: string): void {
    if (this.chunks.pending) throw new Error(`${what}() while a read is pending`);
    if (this.chunks.length > 0) throw new Error(queuedError);
    if (this.ended || this.closed || !this.native) throw this.error ?? disconnected();
    if (this.writes.length > 0) throw new Error(`${what}() while a write is pending`);
    this.chunks.unpause();
  }

  /** Upgrades with native upgradeTLS; from here on the raw handlers are muted. */
  private upgradeNative(options: BunNative.TLSOptions): Promise<TlsInfo> {
    const raw = this.native!;
    return new Promise<TlsInfo>((resolve, reject) => {
      this.handshake = { resolve, reject };
      this.phase = 'tls';
      try {
        const [, secure] = raw.upgradeTLS({ tls: options, socket: this.tlsHandlers() });
        this.native = secure;
      } catch (e) {
        this.phase = 'plain';
        this.handshake = null;
        reject(tlsError(e));
      }
    });
  }

  async startTls(options: TlsClientOptions): Promise<TlsInfo> {
    // Bytes already read from the raw socket can only be plaintext injected before the handshake.
    this.releaseForTls('startTls', 'received unencrypted data after SSL response');
    let native: BunNative.TLSOptions;
    try {
      native = nativeClientTls(options);
    } catch (e) {
      throw tlsError(e);
    }
    return this.upgradeNative(native);
  }

  async startServerTls(options: TlsServerOptions, pending?: Uint8Array): Promise<TlsInfo> {
    // Plaintext pipelined behind an SSLRequest must never be fed to TLS (CVE-2021-23214).
    this.releaseForTls('startServerTls', 'received unencrypted data after SSL request');
    if (!pending?.length) {
      let native: BunNative.TLSOptions;
      try {
        native = nativeServerTls(options);
      } catch (e) {
        throw tlsError(e);
      }
      return this.upgradeNative(native);
    }
    return this.upgradeNodeServer(options, pending);
  }

  /** Direct TLS as the server: node:tls over a Duplex that replays the ClientHello already read. */
  private upgradeNodeServer(options: TlsServerOptions, pending: Uint8Array): Promise<TlsInfo> {
    const opts = nodeServerTls(options);
    const duplex = new Duplex({
      read: () => {
        this.native?.resume();
      },
      write: (chunk: Buffer, _enc, cb) => {
        this.writeRaw(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)).then(
          () => cb(),
          (e: Error) => cb(e),
        );
      },
      final: (cb) => {
        this.native?.end();
        cb();
      },
      destroy: (err, cb) => {
        if (!this.closed) this.native?.terminate();
        cb(err);
      },
    });
    this.duplex = duplex;
    this.phase = 'node';
    duplex.push(Buffer.from(pending.buffer, pending.byteOffset, pending.byteLength));
    const secure = new tls.TLSSocket(duplex as unknown as import('node:net').Socket, {
      isServer: true,
      ...opts,
    });
    this.secure = secure;
    return new Promise<TlsInfo>((resolve, reject) => {
      const onError = (e: Error) => {
        secure.off('secure', onSecure);
        secure.destroy();
        reject(tlsError(e));
      };
      const onSecure = () => {
        secure.off('error', onError);
        // As tls.Server does: from here on a TLS failure (a forged record) is an 'error' event, which
        // node:tls otherwise keeps to its internal '_tlsError' once the handshake is done.
        (secure as unknown as { _releaseControl?: () => boolean })._releaseControl?.();
        secure.on('data', (d: Buffer) => this.push(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
        secure.on('end', () => this.finish(null));
        secure.on('error', (e: Error) => this.finish(tlsError(e)));
        secure.on('close', () => this.finish(null));
        resolve(nodeTlsInfo(secure));
      };
      secure.once('secure', onSecure);
      secure.once('error', onError);
    });
  }

  /* ----------------------------------------------------------------------------------------------- */
  /* Closing                                                                                          */
  /* ----------------------------------------------------------------------------------------------- */

  close(): Promise<void> {
    if (this.closed || !this.native) return Promise.resolve();
    this.closing ??= new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.destroy(), 2000);
      (timer as { unref?: () => void }).unref?.();
      this.closeWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
      // close_notify when TLS is active, then FIN; the peer's reply data is never read. Bun's native
      // TLS end() reports the close only after the peer's own close, a round trip later (or the timer,
      // against a server that keeps its end open); shutdown() sends the same bytes and closes at once.
      if (this.phase === 'node') this.secure?.end();
      else if (this.phase === 'tls' && this.role === 'client') this.native?.shutdown();
      else this.native?.end();
      this.chunks.unpause();
    });
    return this.closing;
  }

  destroy(): void {
    if (this.phase === 'node') this.secure?.destroy();
    if (!this.closed) {
      try {
        this.native?.terminate();
      } catch {
        // already gone
      }
    }
    // Bun reports the close asynchronously; callers of destroy() expect the socket gone now.
    this.onClosed();
  }
}
