/**
 * One `pgconn serve` session after ReadyForQuery: PostgresMain's loop over frontend messages, in the
 * simple query protocol only. A Query is split into statements, each answered by responder.ts (or
 * run as a COPY), then ReadyForQuery with the transaction status. The COPY source streams its rows
 * with backpressure, many CopyData messages per ~64 KiB write, and stops at a matching cancel
 * request; the COPY sink counts rows by newlines. The extended protocol is refused (0A000) and
 * everything up to Sync is discarded, as after any extended-protocol error.
 */
import {
  type BackendMessage,
  constantTimeEqual,
  type FrontendMessage,
  type ServerConnection,
} from '@pgconn/core';
import {
  type Answer,
  answer,
  errorResponse,
  noticeResponse,
  type SessionInfo,
  splitStatements,
} from './responder.ts';

/** Target size of one socket write while streaming COPY data. */
export const COPY_CHUNK = 64 * 1024;
const COPY_DATA = 0x64; // 'd'
const NEWLINE = 0x0a;

type TxStatus = 'I' | 'T' | 'E';
/** What running one statement (or a whole query) left behind. */
type Outcome = 'ok' | 'failed' | 'closed';

const fatal = (code: string, message: string): BackendMessage => errorResponse(code, message, 'FATAL');

export class Session {
  readonly conn: ServerConnection;
  private readonly log: (line: string) => void;
  private readonly info: SessionInfo;
  private status: TxStatus = 'I';
  /** A query is running: a cancel request applies to it (an idle session ignores cancels). */
  private busy = false;
  private cancelRequested = false;
  private terminating = false;
  /** The loop waits for the client's next message (nothing is being written). */
  private waiting = false;
  /** After an error in the extended protocol: discard messages until Sync. */
  private skipUntilSync = false;
  private queries = 0;
  private finished: Promise<void> | null = null;
  private fatalSent = false;

  constructor(conn: ServerConnection, log: (line: string) => void) {
    this.conn = conn;
    this.log = log;
    const s = conn.session;
    this.info = {
      user: s.user,
      database: s.database,
      serverVersion: s.serverParameters.get('server_version') ?? '18.0',
      settings: new Map(s.serverParameters),
    };
  }

  get processId(): number {
    return this.conn.session.backendKey.processId;
  }

  /** True when `key` is this session's cancel key (constant time). */
  matchesKey(key: Uint8Array): boolean {
    return constantTimeEqual(key, this.conn.session.backendKey.secretKey);
  }

  /** A matching CancelRequest arrived: abort the running statement, if any. */
  cancel(): boolean {
    if (!this.busy) return false;
    this.cancelRequested = true;
    return true;
  }

  /** Runs the session to its end (Terminate, EOF, a protocol violation or terminate()). */
  run(): Promise<void> {
    this.finished ??= this.loop();
    return this.finished;
  }

  /**
   * Server shutdown: FATAL 57P01 as PostgreSQL's fast shutdown sends it, then close. A session busy
   * streaming stops at the next row; one that does not finish within 2 s is dropped.
   */
  async terminate(): Promise<void> {
    if (this.terminating) return this.finished ?? undefined;
    this.terminating = true;
    if (this.waiting) await this.sendFatalAndClose();
    const timer = setTimeout(() => this.conn.destroy(), 2000);
    timer.unref?.();
    await this.finished;
    clearTimeout(timer);
  }

  private async sendFatalAndClose(): Promise<void> {
    if (this.fatalSent) return;
    this.fatalSent = true;
    this.conn.queue(fatal('57P01', 'terminating connection due to administrator command'));
    await this.conn.flush().catch(() => {});
    await this.conn.close().catch(() => {});
  }

  private async nextMessage(): Promise<FrontendMessage | null> {
    this.waiting = true;
    try {
      return await this.conn.next();
    } finally {
      this.waiting = false;
    }
  }

  private async loop(): Promise<void> {
    let end = 'client closed the connection';
    try {
      for (;;) {
        if (this.terminating) {
          end = 'terminated by server shutdown';
          break;
        }
        let m: FrontendMessage | null;
        try {
          m = await this.nextMessage();
        } catch (e) {
          // An unknown or malformed message: PostgreSQL's FATAL "invalid frontend message type".
          end = `protocol violation: ${(e as Error).message}`;
          this.conn.queue(fatal('08P01', (e as Error).message));
          await this.conn.flush().catch(() => {});
          break;
        }
        if (m === null || this.terminating) {
          if (this.terminating) end = 'terminated by server shutdown';
          else if (this.conn.readFailure) end = this.conn.readFailure;
          break;
        }
        if (m.type === 'Terminate') {
          end = 'Terminate';
          break;
        }
        if ((await this.dispatch(m)) === 'closed') {
          end = this.terminating ? 'terminated by server shutdown' : 'connection lost';
          break;
        }
      }
    } catch (e) {
      end = `connection lost: ${(e as Error).message}`;
    }
    if (this.terminating) await this.sendFatalAndClose();
    this.log(`session ended (${end}; ${this.queries} ${this.queries === 1 ? 'query' : 'queries'})`);
    await this.conn.close().catch(() => this.conn.destroy());
  }

  private async dispatch(m: FrontendMessage): Promise<Outcome> {
    // After an extended-protocol error PostgreSQL ignores every message until Sync (a Query too).
    if (this.skipUntilSync && m.type !== 'Sync') return 'ok';
    switch (m.type) {
      case 'Query':
        return this.query(m.sql);
      case 'Sync':
        this.skipUntilSync = false;
        this.conn.queue({ type: 'ReadyForQuery', status: this.status });
        await this.conn.flush();
        return 'ok';
      case 'Flush':
        await this.conn.flush();
        return 'ok';
      case 'Parse':
      case 'Bind':
      case 'Describe':
      case 'Execute':
      case 'Close':
        this.skipUntilSync = true;
        if (this.status === 'T') this.status = 'E';
        this.conn.queue(errorResponse('0A000', 'pgconn serve does not support the extended query protocol'));
        await this.conn.flush();
        return 'ok';
      case 'FunctionCall':
        if (this.status === 'T') this.status = 'E';
        this.conn.queue(errorResponse('0A000', 'pgconn serve does not support function calls'), {
          type: 'ReadyForQuery',
          status: this.status,
        });
        await this.conn.flush();
        return 'ok';
      case 'CopyData':
      case 'CopyDone':
      case 'CopyFail':
        // Left over from a COPY that already failed: PostgreSQL accepts and ignores them.
        return 'ok';
      default:
        // Authentication messages after startup.
        this.conn.queue(fatal('08P01', `invalid frontend message type (${m.type}) after startup`));
        await this.conn.flush().catch(() => {});
        return 'closed';
    }
  }

  /** exec_simple_query: statements in order; the first failure skips the rest. */
  private async query(sql: string): Promise<Outcome> {
    this.queries++;
    this.busy = true;
    this.cancelRequested = false;
    try {
      const statements = splitStatements(sql);
      if (statements.length === 0) this.conn.queue({ type: 'EmptyQueryResponse' });
      for (const statement of statements) {
        const outcome = await this.statement(statement);
        if (outcome === 'closed') return 'closed';
        if (outcome === 'failed') {
          if (this.status === 'T') this.status = 'E';
          break;
        }
      }
    } finally {
      this.busy = false;
      this.cancelRequested = false;
    }
    if (this.terminating) return 'closed';
    this.conn.queue({ type: 'ReadyForQuery', status: this.status });
    await this.conn.flush();
    return 'ok';
  }

  private async statement(sql: string): Promise<Outcome> {
    if (this.status === 'E' && !/^(commit|end|rollback|abort)\b/i.test(sql)) {
      this.conn.queue(
        errorResponse(
          '25P02',
          'current transaction is aborted, commands ignored until end of transaction block',
        ),
      );
      return 'failed';
    }
    const a: Answer = answer(sql, this.info);
    switch (a.kind) {
      case 'copy-out':
        return this.copyOut(a.unit, a.repeat, a.rows);
      case 'copy-in':
        return this.copyIn();
      case 'messages':
        return this.messages(a);
    }
  }

  private messages(a: Extract<Answer, { kind: 'messages' }>): Outcome {
    const before = this.status;
    switch (a.transaction) {
      case 'begin':
        if (before === 'T')
          this.conn.queue(noticeResponse('25001', 'there is already a transaction in progress'));
        this.status = 'T';
        break;
      case 'commit':
      case 'rollback':
        if (before === 'I') this.conn.queue(noticeResponse('25P01', 'there is no transaction in progress'));
        this.status = 'I';
        // COMMIT of a failed transaction rolls it back, and says so in its tag.
        if (before === 'E') {
          this.conn.queue({ type: 'CommandComplete', tag: 'ROLLBACK' });
          return 'ok';
        }
        break;
      default:
        break;
    }
    this.conn.queue(...a.messages);
    for (const m of a.messages) {
      // A SET of a reported parameter is reported back, as PostgreSQL does for GUC_REPORT settings.
      if (m.type === 'CommandComplete' && m.tag === 'SET') this.reportSettings();
    }
    return a.failed ? 'failed' : 'ok';
  }

  private reportSettings(): void {
    const reported = this.conn.session.serverParameters;
    for (const [name, value] of this.info.settings) {
      if (reported.has(name) && reported.get(name) !== value) {
        reported.set(name, value);
        this.conn.queue({ type: 'ParameterStatus', name, value });
      }
    }
  }

  /** Stops a COPY at a cancel request (57014) or shutdown; null when it may go on. */
  private interrupted(): Outcome | null {
    if (this.terminating) return 'closed';
    if (this.cancelRequested) {
      this.conn.queue(errorResponse('57014', 'canceling statement due to user request'));
      return 'failed';
    }
    return null;
  }

  /**
   * COPY (SELECT repeat(unit, repeat) FROM generate_series(1, rows)) TO STDOUT: one CopyData per
   * row, exactly PostgreSQL's bytes, written in ~64 KiB batches that each wait for the socket to
   * drain. Rows longer than a batch are streamed in pieces; nothing larger than ~64 KiB is built.
   */
  private async copyOut(unit: Uint8Array, repeat: number, rows: number): Promise<Outcome> {
    const conn = this.conn;
    conn.queue({ type: 'CopyOutResponse', format: 0, columnFormats: [0] });
    const payload = unit.length * repeat + 1;
    const header = (): Uint8Array => {
      const h = new Uint8Array(5);
      h[0] = COPY_DATA;
      new DataView(h.buffer).setUint32(1, payload + 4);
      return h;
    };
    const messageLength = 5 + payload;
    let sent = 0;
    if (messageLength <= COPY_CHUNK) {
      const perChunk = Math.floor(COPY_CHUNK / messageLength);
      const chunk = new Uint8Array(perChunk * messageLength);
      const message = chunk.subarray(0, messageLength);
      message.set(header());
      for (let i = 0; i < repeat; i++) message.set(unit, 5 + i * unit.length);
      message[messageLength - 1] = NEWLINE;
      for (let i = 1; i < perChunk; i++) chunk.copyWithin(i * messageLength, 0, messageLength);
      while (sent < rows) {
        const stop = this.interrupted();
        if (stop) return stop;
        const n = Math.min(perChunk, rows - sent);
        await conn.write(n === perChunk ? chunk : chunk.subarray(0, n * messageLength));
        sent += n;
      }
    } else {
      // Long rows: the header, then the text in pieces of a reused buffer, then the newline.
      const units = Math.max(1, Math.floor(COPY_CHUNK / unit.length));
      const piece = new Uint8Array(units * unit.length);
      for (let i = 0; i < units; i++) piece.set(unit, i * unit.length);
      const head = header();
      const newline = Uint8Array.of(NEWLINE);
      while (sent < rows) {
        const stop = this.interrupted();
        if (stop) return stop;
        await conn.write(head);
        for (let left = payload - 1; left > 0; ) {
          const n = Math.min(piece.length, left);
          await conn.write(n === piece.length ? piece : piece.subarray(0, n));
          left -= n;
        }
        await conn.write(newline);
        sent++;
      }
    }
    conn.queue({ type: 'CopyDone' }, { type: 'CommandComplete', tag: `COPY ${rows}` });
    return 'ok';
  }

  /**
   * COPY … FROM STDIN: CopyInResponse, then CopyData until CopyDone (rows counted by newlines, a
   * last line without one counts too) or CopyFail (57014, PostgreSQL's words).
   */
  private async copyIn(): Promise<Outcome> {
    const conn = this.conn;
    conn.queue({ type: 'CopyInResponse', format: 0, columnFormats: [0] });
    await conn.flush();
    let rows = 0;
    let openLine = false;
    for (;;) {
      const m = await this.nextMessage();
      if (m === null || this.terminating) return 'closed';
      switch (m.type) {
        case 'CopyData': {
          const d = m.data;
          if (d.length > 0) {
            rows += countNewlines(d);
            openLine = d[d.length - 1] !== NEWLINE;
          }
          break;
        }
        case 'CopyDone':
          if (openLine) rows++;
          conn.queue({ type: 'CommandComplete', tag: `COPY ${rows}` });
          return 'ok';
        case 'CopyFail':
          conn.queue(errorResponse('57014', `COPY from stdin failed: ${m.message}`));
          return 'failed';
        case 'Flush':
        case 'Sync':
          // CopyGetData ignores them, for clients that send them by habit.
          break;
        case 'Terminate':
          return 'closed';
        default:
          conn.queue(errorResponse('08P01', `unexpected message type (${m.type}) during COPY from stdin`));
          return 'failed';
      }
      const stop = this.interrupted();
      if (stop) return stop;
    }
  }
}

/** memchr through Buffer.indexOf: ~1 GB/s with 10-byte rows, far more with longer ones. */
function countNewlines(b: Uint8Array): number {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  let n = 0;
  for (let i = buf.indexOf(NEWLINE); i !== -1; i = buf.indexOf(NEWLINE, i + 1)) n++;
  return n;
}
