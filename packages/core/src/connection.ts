/**
 * The one small loop that drives a ClientHandshake over a Transport, and the Connection it hands back
 * after ReadyForQuery. This module owns the connect_timeout timer (a web-standard setTimeout); the
 * state machine itself stays free of I/O and time.
 */

import {
  type ClientAction,
  type ClientEvent,
  ClientHandshake,
  type HandshakeConfig,
  type HandshakeResult,
  type HandshakeStep,
} from './client/handshake.ts';
import { setParameter } from './client/parameters.ts';
import { type BackendMessage, decodeBackend, type RowDescriptionField } from './codec/backend.ts';
import { BackendType } from './codec/constants.ts';
import { decodeDataRowText } from './codec/datarow.ts';
import { type Frame, Framer } from './codec/framer.ts';
import { encodeFrontend } from './codec/frontend.ts';
import { Writer } from './codec/writer.ts';
import { ConnectionError, type NoticeFields, PgConnError, ProtocolError, ServerError } from './errors.ts';
import type { ConnectOptions, Endpoint, TlsInfo, Transport, TransportSocket } from './transport.ts';

export interface NegotiateOptions {
  /** The host name to show in error messages when it differs from the address (libpq: "name" (addr)). */
  hostName?: string;
  /** connect_timeout in seconds for this address (libpq: values 1 are raised to 2; 0 = none). */
  connectTimeout?: number;
  onStep?: (step: HandshakeStep) => void;
  socket?: Omit<ConnectOptions, 'signal'>;
}

const describeEndpoint = (e: Endpoint, name?: string): string => {
  if ('path' in e) return `connection to server on socket "${e.path}" failed: `;
  const at = name && name !== e.host ? `"${name}" (${e.host})` : `"${e.host}"`;
  return `connection to server at ${at}, port ${e.port} failed: `;
};

class Timeout extends Error {}

/** Negotiates with one address; resolves with an open Connection or rejects with a PgConnError. */
export async function negotiate(
  transport: Transport,
  endpoint: Endpoint,
  config: HandshakeConfig,
  options: NegotiateOptions = {},
): Promise<Connection> {
  const { socket, result } = await drive(
    transport,
    endpoint,
    new ClientHandshake(config, options.onStep),
    options,
  );
  return new Connection(socket, result, endpoint, { transport, config, options });
}

/** Runs a handshake over the transport until it is done; owns the connect_timeout timer. */
async function drive(
  transport: Transport,
  endpoint: Endpoint,
  hs: ClientHandshake,
  options: NegotiateOptions,
): Promise<{ socket: TransportSocket; result: HandshakeResult }> {
  let socket: TransportSocket | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut: Promise<never> | null = null;
  const connectOptions: ConnectOptions = { ...options.socket };
  if (options.connectTimeout && options.connectTimeout > 0) {
    const ms = Math.max(2, options.connectTimeout) * 1000;
    // The signal only stops a connect the timeout gave up on, so there is none without a timeout (an
    // AbortController and the transport's listener on it cost ~20 µs in a fresh Node process).
    const abort = new AbortController();
    connectOptions.signal = abort.signal;
    timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abort.abort();
        reject(new Timeout());
      }, ms);
    });
    timedOut.catch(() => {});
  }
  const race = <T>(p: Promise<T>): Promise<T> => (timedOut ? Promise.race([p, timedOut]) : p);
  const prefix = describeEndpoint(endpoint, options.hostName);

  try {
    let actions: ClientAction[] = hs.start();
    for (;;) {
      let event: ClientEvent | null = null;
      for (const a of actions) {
        switch (a.type) {
          case 'connect':
            if (a.tls) {
              if ('path' in endpoint)
                throw new ProtocolError('direct TLS over a Unix socket is not possible');
              try {
                const r = await race(transport.connectTls(endpoint, a.tls, connectOptions));
                socket = r.socket;
                event = { type: 'tlsEstablished', info: r.info };
              } catch (e) {
                if (e instanceof Timeout) throw e;
                event = { type: 'tlsFailed', error: e as Error };
              }
            } else {
              try {
                socket = await race(transport.connect(endpoint, connectOptions));
              } catch (e) {
                if (e instanceof Timeout) throw e;
                throw connectFailure(e as Error, endpoint);
              }
              event = { type: 'connected' };
            }
            break;
          case 'write':
            await race(socket!.write(a.bytes));
            break;
          case 'startTls':
            try {
              event = { type: 'tlsEstablished', info: await race(socket!.startTls(a.options)) };
            } catch (e) {
              if (e instanceof Timeout) throw e;
              event = { type: 'tlsFailed', error: e as Error };
            }
            break;
          case 'close':
            await socket?.close();
            socket = null;
            break;
          case 'done':
            if (!socket) throw new ProtocolError('negotiation finished without a socket');
            return { socket, result: a.result };
          case 'fail':
            throw a.error;
        }
      }
      if (event === null) {
        let chunk: Uint8Array | null;
        try {
          chunk = await race(socket!.read());
        } catch (e) {
          if (e instanceof Timeout) throw e;
          event = { type: 'closed', error: e as Error };
          chunk = null;
        }
        event ??= chunk ? { type: 'data', bytes: chunk } : { type: 'closed' };
      }
      actions = await race(hs.handle(event));
    }
  } catch (e) {
    socket?.destroy();
    let err: PgConnError;
    if (e instanceof Timeout) err = new ConnectionError('timeout expired', 'timeout');
    else if (e instanceof PgConnError) err = e;
    else err = new ConnectionError((e as Error).message);
    if (hs.state !== 'BAD') options.onStep?.({ state: 'BAD', detail: err.message.split('\n')[0]! });
    err.message = prefix + [...hs.failures.map((f) => f.message), err.message].join(`\n${prefix}`);
    throw err;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

function connectFailure(e: Error, endpoint: Endpoint): ConnectionError {
  const code = (e as { code?: string }).code;
  const text = code === 'ECONNREFUSED' ? 'Connection refused' : e.message;
  const hint =
    'path' in endpoint
      ? 'Is the server running locally and accepting connections on that socket?'
      : 'Is the server running on that host and accepting TCP/IP connections?';
  const err = new ConnectionError(`${text}\n\t${hint}`, 'connect');
  (err as { cause?: unknown }).cause = e;
  return err;
}

type TextDataRow = { type: 'TextDataRow'; fields: (string | null)[] };
/** Filled in while a COPY OUT runs: the CommandComplete tag. */
type CopyOutEnd = { tag: string };

const lost = (e: unknown): ConnectionError => {
  const err = new ConnectionError(`server closed the connection unexpectedly: ${(e as Error).message ?? e}`);
  (err as { cause?: unknown }).cause = e;
  return err;
};

export interface QueryResult {
  command: string;
  fields: RowDescriptionField[];
  /** Text-format values; null for SQL NULL. */
  rows: (string | null)[][];
}

/** An open, authenticated session (after ReadyForQuery). */
export class Connection {
  readonly parameters: Map<string, string>;
  readonly backendKey: HandshakeResult['backendKey'];
  readonly protocolVersion: number;
  readonly tls: TlsInfo | null;
  readonly handshake: HandshakeResult;
  readonly endpoint: Endpoint;
  transactionStatus: 'I' | 'T' | 'E';
  /** Receives NoticeResponse fields after startup. */
  onNotice: ((fields: NoticeFields) => void) | null = null;
  private readonly socket: TransportSocket;
  private readonly framer = new Framer();
  // Starts small and grows to the COPY batch size when a COPY needs it: an idle connection should
  // not hold 64 KiB it never writes (a server with thousands of them measures it).
  private readonly writer = new Writer();
  private busy = false;
  private closed = false;

  /** What made this session, so cancel() can negotiate a second connection the same way. */
  private readonly origin: { transport: Transport; config: HandshakeConfig; options: NegotiateOptions };

  constructor(
    socket: TransportSocket,
    result: HandshakeResult,
    endpoint: Endpoint,
    origin: { transport: Transport; config: HandshakeConfig; options: NegotiateOptions },
  ) {
    this.origin = origin;
    this.socket = socket;
    this.handshake = result;
    this.endpoint = endpoint;
    this.parameters = result.parameters;
    this.backendKey = result.backendKey;
    this.protocolVersion = result.protocolVersion;
    this.tls = result.tls;
    this.transactionStatus = result.transactionStatus;
    if (result.leftover.length) this.framer.push(result.leftover);
  }

  /**
   * Reads the next message, handling asynchronous ones (ParameterStatus, notices, notifications).
   * With `textRows`, DataRows come decoded to text in one pass (codec/datarow.ts).
   */
  private async next(): Promise<BackendMessage>;
  private async next(textRows: true): Promise<BackendMessage | TextDataRow>;
  private async next(textRows = false): Promise<BackendMessage | TextDataRow> {
    for (;;) {
      const frame = this.framer.next();
      if (frame === null) {
        await this.fill();
        continue;
      }
      if (textRows && frame.type === BackendType.DataRow)
        return { type: 'TextDataRow', fields: decodeDataRowText(frame.body) };
      const msg = decodeBackend(frame);
      if (msg.type === 'ParameterStatus') setParameter(this.parameters, msg.name, msg.value);
      else if (msg.type === 'NoticeResponse') this.onNotice?.(msg.fields);
      else if (msg.type !== 'NotificationResponse') return msg;
    }
  }

  private async send(bytes: Uint8Array): Promise<void> {
    try {
      await this.socket.write(bytes);
    } catch (e) {
      this.closed = true;
      throw lost(e);
    }
  }

  private enter(): void {
    if (this.closed) throw new ConnectionError('connection is closed');
    if (this.busy) throw new ProtocolError('another operation is in progress on this connection');
    this.busy = true;
  }

  /** Runs to ReadyForQuery, throwing the first ErrorResponse after the session is idle again. */
  private async drainToReady(firstError: ServerError | null): Promise<void> {
    let error = firstError;
    for (;;) {
      const m = await this.next();
      if (m.type === 'ErrorResponse') error ??= new ServerError(m.fields);
      else if (m.type === 'ReadyForQuery') {
        this.transactionStatus = m.status;
        if (error) throw error;
        return;
      }
    }
  }

  /** Simple-protocol query; returns the last result's rows as text. */
  async query(sql: string): Promise<QueryResult> {
    this.enter();
    try {
      encodeFrontend(this.writer, { type: 'Query', sql });
      await this.send(this.writer.take());
      const result: QueryResult = { command: '', fields: [], rows: [] };
      let error: ServerError | null = null;
      for (;;) {
        const m = await this.next(true);
        switch (m.type) {
          case 'RowDescription':
            result.fields = m.fields;
            result.rows = [];
            break;
          case 'TextDataRow':
            result.rows.push(m.fields);
            break;
          case 'CommandComplete':
            result.command = m.tag;
            break;
          case 'ErrorResponse':
            error ??= new ServerError(m.fields);
            break;
          case 'CopyInResponse':
            // A COPY FROM STDIN through query(): refuse it so the session stays usable.
            encodeFrontend(this.writer, {
              type: 'CopyFail',
              message: 'COPY FROM STDIN is not supported by query()',
            });
            await this.send(this.writer.take());
            break;
          case 'ReadyForQuery':
            this.transactionStatus = m.status;
            if (error) throw error;
            return result;
          default:
            break;
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /**
   * COPY ... TO STDOUT: yields each CopyData payload. A yielded view is valid until the next
   * iteration step (it points into the receive buffer: no copy is made). One promise per row: for
   * bulk reads `copyOutTo` is several times cheaper per message. The two share every step but the
   * loop, which a generator must own to `yield` from it.
   */
  async *copyOut(sql: string): AsyncGenerator<Uint8Array, string, void> {
    this.enter();
    try {
      await this.startCopyOut(sql);
      const end: CopyOutEnd = { tag: '' };
      for (;;) {
        // Hot path: CopyData is recognised from the type byte without building a message object.
        const frame = this.framer.next();
        if (frame === null) await this.fill();
        else if (frame.type === BackendType.CopyData) yield frame.body;
        else if (await this.copyOutControl(frame, end)) return end.tag;
      }
    } finally {
      this.busy = false;
    }
  }

  /**
   * COPY ... TO STDOUT into a callback, called synchronously for each CopyData payload in the
   * order received; resolves with the command tag. The view passed in is valid only during the
   * call (it points into the receive buffer). When `onData` returns a promise, reading waits for
   * it: that is the backpressure. No promise is made per message otherwise.
   */
  async copyOutTo(sql: string, onData: (data: Uint8Array) => void | Promise<void>): Promise<string> {
    this.enter();
    try {
      await this.startCopyOut(sql);
      const end: CopyOutEnd = { tag: '' };
      for (;;) {
        const frame = this.framer.next();
        if (frame === null) await this.fill();
        else if (frame.type === BackendType.CopyData) {
          const pending = onData(frame.body);
          if (pending !== undefined) await pending;
        } else if (await this.copyOutControl(frame, end)) return end.tag;
      }
    } finally {
      this.busy = false;
    }
  }

  /** Sends the COPY TO query and reads up to CopyOutResponse (an error ends at ReadyForQuery). */
  private async startCopyOut(sql: string): Promise<void> {
    encodeFrontend(this.writer, { type: 'Query', sql });
    await this.send(this.writer.take());
    const m = await this.next();
    if (m.type === 'ErrorResponse') await this.drainToReady(new ServerError(m.fields));
    if (m.type !== 'CopyOutResponse') throw new ProtocolError(`expected CopyOutResponse, received ${m.type}`);
  }

  /**
   * Reads one more chunk into the framer. A transport failure becomes a ConnectionError (the session
   * is then unusable), and so does the server closing here. One `.then` on the transport's promise
   * rather than an async function per layer: a bulk read fills ~60,000 times per GB.
   */
  private fill(): Promise<void> {
    return this.socket.read().then(this.received, this.readFailed);
  }

  private readonly received = (chunk: Uint8Array | null): void => {
    if (chunk === null) {
      this.closed = true;
      throw new ConnectionError('server closed the connection unexpectedly');
    }
    this.framer.push(chunk);
  };

  private readonly readFailed = (e: unknown): never => {
    this.closed = true;
    throw lost(e);
  };

  /** A non-CopyData message during COPY OUT; true once ReadyForQuery ends it (tag in `end`). */
  private async copyOutControl(frame: Frame, end: CopyOutEnd): Promise<boolean> {
    const m = decodeBackend(frame);
    if (m.type === 'CommandComplete') end.tag = m.tag;
    else if (m.type === 'ErrorResponse') await this.drainToReady(new ServerError(m.fields));
    else if (m.type === 'ReadyForQuery') {
      this.transactionStatus = m.status;
      return true;
    } else if (m.type === 'ParameterStatus') setParameter(this.parameters, m.name, m.value);
    else if (m.type === 'NoticeResponse') this.onNotice?.(m.fields);
    return false;
  }

  /**
   * COPY ... FROM STDIN: streams `source` as CopyData, coalescing small chunks into writes of about
   * 64 KiB; resolves with the command tag. If `source` throws, sends CopyFail and rethrows.
   */
  async copyIn(sql: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<string> {
    this.enter();
    try {
      encodeFrontend(this.writer, { type: 'Query', sql });
      await this.send(this.writer.take());
      const m = await this.next();
      if (m.type === 'ErrorResponse') await this.drainToReady(new ServerError(m.fields));
      if (m.type !== 'CopyInResponse') throw new ProtocolError(`expected CopyInResponse, received ${m.type}`);
      const w = this.writer;
      try {
        for await (const chunk of source) {
          if (chunk.length >= 32 * 1024) {
            // Large chunk: header alone, then the caller's bytes, with no copy into our buffer.
            w.u8(0x64).i32(chunk.length + 4);
            await this.send(w.take());
            await this.send(chunk);
            continue;
          }
          encodeFrontend(w, { type: 'CopyData', data: chunk });
          if (w.length >= 64 * 1024) await this.send(w.take());
        }
      } catch (e) {
        w.take();
        encodeFrontend(w, { type: 'CopyFail', message: `COPY source failed: ${(e as Error).message}` });
        await this.send(w.take());
        await this.drainToReady(null).catch(() => {});
        throw e;
      }
      encodeFrontend(w, { type: 'CopyDone' });
      await this.send(w.take());
      let tag = '';
      let error: ServerError | null = null;
      for (;;) {
        const r = await this.next();
        if (r.type === 'CommandComplete') tag = r.tag;
        else if (r.type === 'ErrorResponse') error ??= new ServerError(r.fields);
        else if (r.type === 'ReadyForQuery') {
          this.transactionStatus = r.status;
          if (error) throw error;
          return tag;
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /**
   * Asks the server to cancel the running query: a new connection to the same address, encryption
   * negotiated as for the session (PostgreSQL 17's libpq does the same), then CancelRequest with the
   * session's key (4 bytes under 3.0, up to 256 under 3.2). Resolves once the server has closed it;
   * the query then fails with SQLSTATE 57014 on this connection.
   */
  async cancel(): Promise<void> {
    const key = this.backendKey;
    if (!key) throw new ProtocolError('the server sent no cancel key (BackendKeyData) for this session');
    const { transport, config, options } = this.origin;
    const hs = new ClientHandshake({ ...config, cancel: key });
    const cancelOptions: NegotiateOptions = {};
    if (options.connectTimeout !== undefined) cancelOptions.connectTimeout = options.connectTimeout;
    if (options.hostName !== undefined) cancelOptions.hostName = options.hostName;
    const { socket } = await drive(transport, this.endpoint, hs, cancelOptions);
    await socket.close();
  }

  /** Terminate, then TLS close_notify, then socket close. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      encodeFrontend(this.writer, { type: 'Terminate' });
      await this.send(this.writer.take());
    } catch {
      // The peer may already be gone; closing is still the right outcome.
    }
    await this.socket.close();
  }
}
