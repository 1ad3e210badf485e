/**
 * A scripted fake PostgreSQL server for byte-level client tests: listens on 127.0.0.1 (port 0) with
 * node:net, and runs `script(peer)` once per accepted connection. The script reads and writes raw
 * bytes (or encoded backend messages), can upgrade the socket to TLS as the server, and can close,
 * reset or stall at any point, so every step of a client's negotiation can be made to misbehave.
 *
 * Everything a client sends is recorded per connection (`received`: the plaintext before TLS and the
 * decrypted bytes after it), whether or not the script read it. `close()` destroys every socket it
 * accepted, so a test leaves no handle behind even when a client leaks its side.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { ALPN_POSTGRESQL, type BackendMessage, encodeBackend, SSL_REQUEST_CODE, Writer } from '@pgconn/core';

export interface FakeTlsOptions {
  /** PEM certificate (chain) and key of the server. */
  cert: string;
  key: string;
  /**
   * ALPN protocols the server selects from when the client offers them. Default `['postgresql']`;
   * `[]` selects none (a server that ignores ALPN, as pre-17 PostgreSQL does).
   */
  alpnProtocols?: string[];
}

export interface FakeServerOptions {
  /** Needed by scripts that call `peer.startTls()`. */
  tls?: FakeTlsOptions;
  /**
   * Keep the server's side open after the client's FIN (node:net closes it at once by default), so a
   * script can decide when the server closes.
   */
  allowHalfOpen?: boolean;
}

/** Rejects pending and later reads once the client's side is gone. */
export class FakePeerClosedError extends Error {
  override name = 'FakePeerClosedError';
}

/** One accepted connection, as the script sees it. */
export interface FakePeer {
  /** 0 for the first accepted connection, 1 for the second... */
  readonly index: number;
  /** Everything received so far on this connection (plaintext, then decrypted after TLS). */
  readonly received: Uint8Array;
  /** True once `startTls()` completed. */
  readonly encrypted: boolean;
  /** The ALPN protocol selected by the TLS handshake, or null. */
  readonly alpnProtocol: string | null;
  /** Resolves when the server-side socket emitted 'close'. */
  readonly closed: Promise<void>;
  readonly isClosed: boolean;
  /** True when the client ended or reset its side (its FIN or RST reached us). */
  readonly clientClosed: boolean;
  /** Exactly `n` bytes; rejects with FakePeerClosedError if the connection ends first. */
  read(n: number): Promise<Uint8Array>;
  /** One untyped packet (SSLRequest, StartupMessage...): the whole packet, length word included. */
  readStartupPacket(): Promise<Uint8Array>;
  /** One typed message (frontend, after startup). `bytes` is the whole message. */
  readMessage(): Promise<{ type: number; body: Uint8Array; bytes: Uint8Array }>;
  /** Writes raw bytes; a string is written as Latin-1 (one byte per char). */
  write(bytes: Uint8Array | string): Promise<void>;
  /** Encodes the messages with core's encodeBackend and writes them in one write. */
  send(...messages: BackendMessage[]): Promise<void>;
  /** Server-side TLS handshake on this socket (ALPN per options). Rejects if it fails. */
  startTls(): Promise<void>;
  /** Half-close (FIN); resolves when the socket has closed. */
  end(): Promise<void>;
  /** Closes at once (no FIN wait; an RST if unread data is pending). */
  destroy(): void;
  /** Never answers; resolves when the connection closes (the client gave up, or close()). */
  stall(): Promise<void>;
}

export interface FakeServer {
  readonly host: string;
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Per connection, everything the client sent (plaintext part; decrypted bytes after TLS). */
  readonly received: Uint8Array[];
  readonly peers: readonly FakePeer[];
  /** Errors thrown by scripts, in order (a script that read from a closed peer lands here). */
  readonly errors: unknown[];
  /** Resolves when every accepted connection has closed, or rejects after `ms`. */
  allClosed(ms?: number): Promise<void>;
  /** Stops listening, destroys every socket, waits for the scripts to settle. Idempotent. */
  close(): Promise<void>;
}

export type FakeScript = (peer: FakePeer) => Promise<void>;

const latin1 = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Whether `needle` occurs in `haystack` (bytes; a string needle is UTF-8). */
export function includesBytes(haystack: Uint8Array, needle: Uint8Array | string): boolean {
  const n = typeof needle === 'string' ? new TextEncoder().encode(needle) : needle;
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).indexOf(n) !== -1;
}

/** Encodes backend messages into one buffer. */
export function backend(...messages: BackendMessage[]): Uint8Array {
  const w = new Writer(256);
  for (const m of messages) encodeBackend(w, m);
  return w.take();
}

/** A pre-3.0 error as a postmaster sends it on fork failure: 'E', the text, '\n', NUL. */
export function v2Error(text: string): Uint8Array {
  return latin1(`E${text}\n\0`);
}

/** The 8 bytes of an SSLRequest. */
export const SSL_REQUEST_BYTES: Uint8Array = (() => {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setInt32(0, 8);
  v.setInt32(4, SSL_REQUEST_CODE);
  return b;
})();

export const isSslRequest = (packet: Uint8Array): boolean =>
  packet.length === 8 && SSL_REQUEST_BYTES.every((b, i) => packet[i] === b);

const int32 = (b: Uint8Array, at: number): number =>
  new DataView(b.buffer, b.byteOffset, b.byteLength).getInt32(at);

class Peer implements FakePeer {
  readonly index: number;
  private readonly raw: net.Socket;
  private sock: net.Socket;
  private readonly parts: Uint8Array[] = [];
  private unread: Uint8Array[] = [];
  private unreadLength = 0;
  private eof = false;
  private waiter: { n: number; resolve: (b: Uint8Array) => void; reject: (e: Error) => void } | null = null;
  private readonly tlsOptions: FakeTlsOptions | undefined;
  private readonly track: (s: net.Socket) => void;
  encrypted = false;
  alpnProtocol: string | null = null;
  isClosed = false;
  clientClosed = false;
  readonly closed: Promise<void>;

  private readonly onData = (chunk: Buffer) => {
    const view = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.parts.push(view);
    this.unread.push(view);
    this.unreadLength += view.length;
    this.serve();
  };
  private readonly onEnd = () => {
    this.clientClosed = true;
    this.finish();
  };

  constructor(
    index: number,
    raw: net.Socket,
    tlsOptions: FakeTlsOptions | undefined,
    track: (s: net.Socket) => void,
  ) {
    this.index = index;
    this.raw = raw;
    this.sock = raw;
    this.tlsOptions = tlsOptions;
    this.track = track;
    this.closed = new Promise((resolve) => {
      raw.once('close', () => {
        this.isClosed = true;
        this.finish();
        resolve();
      });
    });
    raw.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') this.clientClosed = true;
      this.finish();
    });
    raw.on('data', this.onData);
    raw.on('end', this.onEnd);
  }

  get received(): Uint8Array {
    return concatBytes(this.parts);
  }

  private finish(): void {
    this.eof = true;
    this.serve();
  }

  private take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const c = this.unread[0]!;
      const k = Math.min(c.length, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
      if (k === c.length) this.unread.shift();
      else this.unread[0] = c.subarray(k);
    }
    this.unreadLength -= n;
    return out;
  }

  private serve(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.unreadLength >= w.n) {
      this.waiter = null;
      w.resolve(this.take(w.n));
    } else if (this.eof) {
      this.waiter = null;
      w.reject(new FakePeerClosedError(`connection ${this.index} closed while reading ${w.n} bytes`));
    }
  }

  read(n: number): Promise<Uint8Array> {
    if (this.waiter) return Promise.reject(new Error('FakePeer: a read is already pending'));
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.serve();
    });
  }

  async readStartupPacket(): Promise<Uint8Array> {
    const head = await this.read(4);
    const len = int32(head, 0);
    if (len < 8 || len > 10004) throw new Error(`FakePeer: invalid startup packet length ${len}`);
    return concatBytes([head, await this.read(len - 4)]);
  }

  async readMessage(): Promise<{ type: number; body: Uint8Array; bytes: Uint8Array }> {
    const head = await this.read(5);
    const len = int32(head, 1);
    if (len < 4 || len > 1 << 24) throw new Error(`FakePeer: invalid message length ${len}`);
    const body = await this.read(len - 4);
    return { type: head[0]!, body, bytes: concatBytes([head, body]) };
  }

  write(bytes: Uint8Array | string): Promise<void> {
    const b = typeof bytes === 'string' ? latin1(bytes) : bytes;
    const s = this.sock;
    if (s.destroyed || s.writableEnded) return Promise.reject(new FakePeerClosedError('write after close'));
    return new Promise((resolve, reject) => {
      s.write(b, (e) => (e ? reject(e) : resolve()));
    });
  }

  send(...messages: BackendMessage[]): Promise<void> {
    return this.write(backend(...messages));
  }

  async startTls(): Promise<void> {
    const o = this.tlsOptions;
    if (!o) throw new Error('FakePeer.startTls(): the server was started without tls options');
    if (this.encrypted) throw new Error('FakePeer.startTls(): already encrypted');
    if (this.unreadLength > 0) {
      // The server-side CVE-2021-23214 rule: plaintext behind the SSLRequest must not reach TLS.
      throw new Error('FakePeer.startTls(): unread plaintext is buffered');
    }
    if (this.eof) throw new FakePeerClosedError('startTls() after the connection ended');
    this.raw.off('data', this.onData);
    this.raw.off('end', this.onEnd);
    const alpn = o.alpnProtocols ?? [ALPN_POSTGRESQL];
    const secure = new tls.TLSSocket(this.raw, {
      isServer: true,
      secureContext: tls.createSecureContext({ cert: o.cert, key: o.key }),
      ...(alpn.length ? { ALPNProtocols: alpn } : {}),
    });
    this.track(secure);
    this.sock = secure;
    let handshakeError: Error | null = null;
    secure.on('error', (e: NodeJS.ErrnoException) => {
      handshakeError ??= e;
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') this.clientClosed = true;
      this.finish();
    });
    await new Promise<void>((resolve, reject) => {
      const onSecure = () => {
        secure.off('close', onClose);
        resolve();
      };
      const onClose = () => {
        secure.off('secure', onSecure);
        reject(handshakeError ?? new FakePeerClosedError('connection closed during the TLS handshake'));
      };
      secure.once('secure', onSecure);
      secure.once('close', onClose);
    });
    this.encrypted = true;
    this.alpnProtocol = secure.alpnProtocol || null;
    secure.on('data', this.onData);
    secure.on('end', this.onEnd);
    secure.once('close', () => this.finish());
  }

  end(): Promise<void> {
    this.sock.end();
    return this.closed;
  }

  destroy(): void {
    this.sock.destroy();
    this.raw.destroy();
  }

  stall(): Promise<void> {
    return this.closed;
  }
}

/** Starts a fake server; `script` runs for every accepted connection. */
export async function startFakeServer(
  script: FakeScript,
  options: FakeServerOptions = {},
): Promise<FakeServer> {
  const sockets = new Set<net.Socket>();
  const peers: Peer[] = [];
  const runs: Promise<void>[] = [];
  const errors: unknown[] = [];
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const server = net.createServer({ allowHalfOpen: options.allowHalfOpen ?? false }, (raw) => {
    raw.setNoDelay(true);
    track(raw);
    const peer = new Peer(peers.length, raw, options.tls, track);
    peers.push(peer);
    runs.push(
      (async () => {
        try {
          await script(peer);
        } catch (e) {
          errors.push(e);
        }
      })(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as net.AddressInfo;
  let closing: Promise<void> | null = null;

  return {
    host: '127.0.0.1',
    port: address.port,
    get connections() {
      return peers.length;
    },
    get received() {
      return peers.map((p) => p.received);
    },
    peers,
    errors,
    allClosed(ms = 1000) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const open = peers.filter((p) => !p.isClosed).map((p) => p.index);
          reject(new Error(`fake server: connection(s) ${open.join(', ')} still open after ${ms} ms`));
        }, ms);
      });
      return Promise.race([Promise.all(peers.map((p) => p.closed)).then(() => undefined), timeout]).finally(
        () => clearTimeout(timer),
      );
    },
    close() {
      closing ??= (async () => {
        const listening = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const s of sockets) s.destroy();
        await Promise.all(peers.map((p) => p.closed));
        await listening;
        // Scripts end once their peer is closed (reads reject, stall() resolves); cap the wait anyway.
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          Promise.all(runs),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, 1000);
          }),
        ]);
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
