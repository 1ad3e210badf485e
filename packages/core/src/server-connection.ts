/**
 * The server-side counterpart of connection.ts: drives a ServerHandshake over an accepted socket,
 * owns the authentication_timeout timer (a web-standard setTimeout), and hands back a
 * ServerConnection once ReadyForQuery went out. The state machine stays free of I/O and time.
 */
import { type BackendMessage, encodeBackend } from './codec/backend.ts';
import { Framer } from './codec/framer.ts';
import { decodeFrontend, type FrontendMessage } from './codec/frontend.ts';
import { Writer } from './codec/writer.ts';
import { ConnectionError, type PgConnError } from './errors.ts';
import {
  type ServerAction,
  type ServerCloseReason,
  type ServerEvent,
  ServerHandshake,
  type ServerHandshakeConfig,
  type ServerSession,
  type ServerStep,
} from './server/handshake.ts';
import { sslErrorLog } from './ssl-reason.ts';
import type { ServerTransportSocket, TlsServerOptions } from './transport.ts';

export interface AcceptOptions {
  /** Server TLS material (ALPN is set to postgresql here); null/undefined: answer 'N' to SSLRequest. */
  tls?: Omit<TlsServerOptions, 'alpnProtocols'> | null;
  /** Seconds the whole startup may take (PostgreSQL's authentication_timeout, default 60). */
  authenticationTimeout?: number;
  processId?: number;
  onStep?: (step: ServerStep) => void;
  /** A CancelRequest arrived (compare keys with constantTimeEqual before acting). */
  onCancel?: (processId: number, secretKey: Uint8Array) => void;
  /** Why a connection ended before it became a session (for the server's log). */
  onClose?: (
    reason: ServerCloseReason,
    logMessage: string | undefined,
    error: PgConnError | undefined,
  ) => void;
}

class Timeout extends Error {}

/**
 * Runs the startup of one accepted connection. Resolves with the session's connection, or null when
 * the connection ended before (cancel request, failed authentication, protocol violation, timeout):
 * the socket is closed then. Never rejects for anything the client did.
 */
export async function acceptSession(
  socket: ServerTransportSocket,
  config: Omit<ServerHandshakeConfig, 'tls'> & Pick<ServerHandshakeConfig, 'tls'>,
  options: AcceptOptions = {},
): Promise<ServerConnection | null> {
  const tlsOptions: TlsServerOptions | null = options.tls
    ? {
        ...options.tls,
        alpnProtocols: ['postgresql'],
        requestCert: options.tls.requestCert ?? !!options.tls.ca,
      }
    : null;
  const hs = new ServerHandshake(
    { ...config, tls: tlsOptions ? (config.tls ?? {}) : null },
    {
      remoteHost: socket.remoteAddress,
      ...(options.processId !== undefined ? { processId: options.processId } : {}),
      ...(options.onStep ? { onStep: options.onStep } : {}),
    },
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Timeout()), (options.authenticationTimeout ?? 60) * 1000);
  });
  timedOut.catch(() => {});
  const race = <T>(p: Promise<T>): Promise<T> => Promise.race([p, timedOut]);

  type Step = { end: false; event: ServerEvent | null } | { end: true; conn: ServerConnection | null };
  const run = async (actions: ServerAction[]): Promise<Step> => {
    let event: ServerEvent | null = null;
    for (const a of actions) {
      switch (a.type) {
        case 'write':
          await socket.write(a.bytes);
          break;
        case 'startTls':
          try {
            if (!tlsOptions) throw new Error('TLS is not configured');
            event = { type: 'tlsEstablished', info: await socket.startServerTls(tlsOptions, a.replay) };
          } catch (e) {
            event = { type: 'tlsFailed', error: e as Error };
          }
          break;
        case 'cancel':
          options.onCancel?.(a.processId, a.secretKey);
          break;
        case 'ready':
          return { end: true, conn: new ServerConnection(socket, a.session) };
        case 'close':
          options.onClose?.(a.reason, a.logMessage, a.error);
          await socket.close();
          return { end: true, conn: null };
      }
    }
    return { end: false, event };
  };

  try {
    // Every await is raced against the timeout: a TLS handshake that never completes (a ClientHello
    // sent a byte at a time, a record that announces more than arrives) or a write to a peer that
    // never reads must end at authentication_timeout too, not only a read.
    let step = await race(run(hs.start()));
    while (!step.end) {
      let event = step.event;
      if (event === null) {
        try {
          const chunk = await race(socket.read());
          event = chunk ? { type: 'data', bytes: chunk } : { type: 'closed' };
        } catch (e) {
          if (e instanceof Timeout) throw e;
          event = { type: 'closed', error: e as Error };
        }
      }
      step = await race(run(await race(hs.handle(event))));
    }
    return step.conn;
  } catch (e) {
    // authentication_timeout: the state machine decides what (if anything) to say, then we close.
    if (e instanceof Timeout) {
      const step = await run(await hs.handle({ type: 'timeout' })).catch(() => null);
      if (step?.end && step.conn) return step.conn;
    }
    socket.destroy();
    return null;
  } finally {
    clearTimeout(timer);
  }
}

/** A session after ReadyForQuery: framed frontend messages in, backend messages out. */
export class ServerConnection {
  readonly session: ServerSession;
  private readonly socket: ServerTransportSocket;
  private readonly framer = new Framer();
  /** Encodes replies; `flush()` sends what was encoded in one write. */
  readonly writer: Writer = new Writer(); // grows on demand: idle sessions hold 1 KiB, not 64
  private closed = false;
  private failedRead: Error | null = null;

  constructor(socket: ServerTransportSocket, session: ServerSession) {
    this.socket = socket;
    this.session = session;
    if (session.leftover.length) this.framer.push(session.leftover);
  }

  /** The next frontend message, or null at end of stream. */
  async next(): Promise<FrontendMessage | null> {
    for (;;) {
      const frame = this.framer.next();
      if (frame !== null) return decodeFrontend(frame);
      const chunk = await this.socket.read().catch((e: Error) => {
        this.failedRead = e;
        return null;
      });
      if (chunk === null) return null;
      this.framer.push(chunk);
    }
  }

  /**
   * Why next() returned null, in PostgreSQL's log words, when the socket failed rather than closed:
   * `SSL error: <reason>` for a TLS record that does not decrypt or an alert, else `could not receive
   * data from client: …`. Null after an orderly close.
   */
  get readFailure(): string | null {
    const e = this.failedRead;
    if (!e) return null;
    return sslErrorLog(e) ?? `could not receive data from client: ${e.message.trim()}`;
  }

  /** Encodes messages into the pending buffer (sent by flush()). */
  queue(...messages: BackendMessage[]): void {
    for (const m of messages) encodeBackend(this.writer, m);
  }

  /** Sends everything queued. */
  async flush(): Promise<void> {
    if (this.writer.length === 0) return;
    if (this.closed) throw new ConnectionError('connection is closed');
    await this.socket.write(this.writer.take());
  }

  /** Writes raw bytes (after flushing what is queued). */
  async write(bytes: Uint8Array): Promise<void> {
    await this.flush();
    await this.socket.write(bytes);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.socket.close();
  }

  destroy(): void {
    this.closed = true;
    this.socket.destroy();
  }
}
