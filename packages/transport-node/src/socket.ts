/**
 * A net.Socket or tls.TLSSocket behind the TransportSocket contract: a pull-based read() over
 * 'data' events (pausing the socket when the consumer falls behind, so memory stays bounded),
 * write() that waits for 'drain', and an orderly close (close_notify + FIN).
 */
import type { Socket } from 'node:net';
import * as tls from 'node:tls';
import {
  ChunkQueue,
  type FlowControl,
  type ServerTransportSocket,
  type TlsClientOptions,
  type TlsInfo,
  type TlsServerOptions,
  type TransportSocket,
} from '@pgconn/core';
import { startClientTls } from './client-tls.ts';
import { releaseControl, verifyError } from './tls-internals.ts';
import { tlsConnectOptions, tlsInfoOf, tlsServerOptions } from './tls-options.ts';

/** Above this many queued bytes the socket is paused until the consumer reads. */
const HIGH_WATER = 1024 * 1024;

/**
 * What tls.Server's onServerSocketSecure does for the sockets it makes, done for ours (a TLSSocket
 * around an accepted net.Socket): release control, so that a TLS failure after the handshake closes
 * the connection, and read the client certificate verdict, since Node sets `authorized` on a
 * server-side socket only inside tls.Server.
 */
function serverSecured(s: tls.TLSSocket): void {
  releaseControl(s);
  // No certificate, no verdict to read (tls.Server skips it too when it requested none): Node's
  // verifyError() would build an Error, stack and all, only to say so (1.6% of serve's perf samples).
  if (s.authorized || !s.getPeerX509Certificate()) return;
  const error = verifyError(s);
  if (error) s.authorizationError = (error.code ?? error.message) as unknown as Error;
  else s.authorized = true;
}

export class NodeSocket implements TransportSocket, ServerTransportSocket {
  private sock: Socket;
  private readonly chunks: ChunkQueue;
  private readonly onData = (chunk: Buffer) =>
    // A Buffer is a Uint8Array; Node hands out a fresh one per event, so no copy is needed.
    this.chunks.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
  private readonly onEnd = () => this.chunks.end(null);
  private readonly onError = (e: Error) => this.chunks.end(e);
  private readonly onClose = () => this.chunks.end(null);

  /**
   * @param role 'client' closes like libpq's PQfinish (the goodbye is flushed, then the socket is
   *   released without waiting for the peer); 'server' waits for the client's FIN (up to 2 s), so an
   *   ErrorResponse is not cut off by a reset while the client is still sending.
   */
  constructor(
    sock: Socket,
    private readonly role: 'client' | 'server' = 'client',
  ) {
    this.sock = sock;
    this.chunks = new ChunkQueue(this.flowOf(sock), HIGH_WATER);
    this.attach();
  }

  get remoteAddress(): string {
    return this.sock.remoteAddress ?? '';
  }

  get remotePort(): number {
    return this.sock.remotePort ?? 0;
  }

  private flowOf(sock: Socket): FlowControl {
    return { pause: () => sock.pause(), resume: () => sock.resume() };
  }

  private attach(): void {
    this.sock.on('data', this.onData);
    this.sock.on('end', this.onEnd);
    this.sock.on('error', this.onError);
    this.sock.on('close', this.onClose);
  }

  private detach(): void {
    this.sock.off('data', this.onData);
    this.sock.off('end', this.onEnd);
    this.sock.off('error', this.onError);
    this.sock.off('close', this.onClose);
  }

  read(): Promise<Uint8Array | null> {
    return this.chunks.read();
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.chunks.failure) return Promise.reject(this.chunks.failure);
    if (this.sock.destroyed) return Promise.reject(new Error('socket is closed'));
    if (this.sock.write(bytes)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (e?: Error) => {
        this.sock.off('drain', onDrain);
        this.sock.off('close', onClose);
        e ? reject(e) : resolve();
      };
      const onDrain = () => done();
      const onClose = () => done(this.chunks.failure ?? new Error('socket closed while writing'));
      this.sock.once('drain', onDrain);
      this.sock.once('close', onClose);
    });
  }

  async startTls(options: TlsClientOptions): Promise<TlsInfo> {
    // Bytes already read from the raw socket can only be plaintext injected before the handshake.
    this.releaseForTls('startTls', 'received unencrypted data after SSL response');
    return this.adopt(startClientTls(this.sock, tlsConnectOptions(options)), 'secureConnect');
  }

  async startServerTls(options: TlsServerOptions, pending?: Uint8Array): Promise<TlsInfo> {
    // Plaintext pipelined behind an SSLRequest must never be fed to TLS (CVE-2021-23214).
    this.releaseForTls('startServerTls', 'received unencrypted data after SSL request');
    const raw = this.sock;
    raw.pause();
    // A direct TLS ClientHello was already read to see its first byte: hand it back to the stream.
    if (pending?.length) raw.unshift(Buffer.from(pending.buffer, pending.byteOffset, pending.byteLength));
    const secure = new tls.TLSSocket(raw, { isServer: true, ...tlsServerOptions(options) });
    return this.adopt(secure, 'secure');
  }

  /** Stops reading the raw socket so TLS can take it over; refuses if plaintext is still queued. */
  private releaseForTls(what: string, queuedError: string): void {
    if (this.chunks.pending) throw new Error(`${what}() while a read is pending`);
    if (this.chunks.length > 0) throw new Error(queuedError);
    this.detach();
  }

  /** Waits for the TLS handshake, then reads from the TLS socket instead of the raw one. */
  private async adopt(secure: tls.TLSSocket, ready: 'secureConnect' | 'secure'): Promise<TlsInfo> {
    const info = await new Promise<TlsInfo>((resolve, reject) => {
      const onError = (e: Error) => {
        secure.off(ready, onSecure);
        secure.destroy();
        reject(e);
      };
      const onSecure = () => {
        secure.off('error', onError);
        if (ready === 'secure') serverSecured(secure);
        resolve(tlsInfoOf(secure));
      };
      secure.once(ready, onSecure);
      secure.once('error', onError);
    });
    this.sock = secure;
    this.chunks.restart(this.flowOf(secure));
    this.attach();
    return info;
  }

  close(): Promise<void> {
    const s = this.sock;
    if (s.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => s.destroy(), 2000);
      timer.unref();
      s.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      // end() sends close_notify on a TLS socket, then FIN; the peer's reply data is never read.
      if (this.role === 'client') s.end(() => s.destroy());
      else s.end();
      s.resume();
    });
  }

  destroy(): void {
    this.sock.destroy();
  }
}
