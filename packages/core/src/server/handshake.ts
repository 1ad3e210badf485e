/**
 * The server side of one accepted connection, PostgreSQL's backend startup as a sans-I/O state
 * machine: BackendInitialize → ProcessSSLStartup (direct TLS) → ProcessStartupPacket (the `retry:`
 * loop with `ssl_done`/`gss_done`) → ClientAuthentication → what PostgresMain sends before the first
 * ReadyForQuery. It is fed events (bytes, TLS established/failed, closed, timeout) and answers with
 * actions (write, start TLS, cancel, ready, close); sockets, TLS and the authentication_timeout timer
 * belong to the driver.
 *
 *   PEEK ─0x16→ DIRECT_TLS ─tlsEstablished (ALPN postgresql)→ STARTUP_PACKET
 *   PEEK ─other byte→ STARTUP_PACKET ─SSLRequest 'S'→ TLS_HANDSHAKE ─tlsEstablished→ STARTUP_PACKET
 *     STARTUP_PACKET ↺ SSLRequest 'N' / GSSENCRequest 'N' (each answered at most once)
 *     STARTUP_PACKET ─CancelRequest→ cancel, CLOSED (no reply)
 *     STARTUP_PACKET ─StartupMessage→ AUTHENTICATING ─AuthenticationOk … ReadyForQuery→ READY
 *   any state before READY ─violation / failure / timeout / EOF→ CLOSED
 *
 * Driver contract: perform the actions in order; `close` comes after the writes before it have been
 * flushed. Events may be delivered without waiting for the previous handle() to settle: data and TLS
 * events are processed one at a time in arrival order, `timeout` and `closed` take effect at once
 * (whatever was still being computed, e.g. an auth provider call, then produces nothing). After
 * `ready` or `close`, handle() returns [] for every event.
 */

import { tlsServerEndPointHash } from '../auth/channel-binding.ts';
import { verifyMd5Response } from '../auth/md5.ts';
import { randomBytes } from '../auth/random.ts';
import { mockVerifier, parseScramVerifier, ScramServer, type ScramVerifier } from '../auth/scram.ts';
import { certificateNames } from '../client/verify.ts';
import { encodeBackend } from '../codec/backend.ts';
import {
  ALPN_POSTGRESQL,
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  PROTOCOL_3_2,
  SSL_REQUEST_CODE,
} from '../codec/constants.ts';
import { Framer } from '../codec/framer.ts';
import { decodeFrontend, type FrontendMessage, type PasswordMessageKind } from '../codec/frontend.ts';
import {
  decodeStartupPacket,
  encodeNegotiationReply,
  STARTUP_MAX_LENGTH,
  STARTUP_MIN_LENGTH,
} from '../codec/startup.ts';
import { Writer } from '../codec/writer.ts';
import {
  AuthError,
  ConnectionError,
  type NoticeFields,
  type PgConnError,
  ProtocolError,
  TlsError,
  UnsupportedError,
} from '../errors.ts';
import { sslErrorLog } from '../ssl-reason.ts';
import {
  type AuthPlan,
  type AuthProvider,
  type AuthRequest,
  PG_MAX_AUTH_TOKEN_LENGTH,
  PG_MAX_SASL_MESSAGE_LENGTH,
  type ServerAuthMethod,
  type ServerTlsInfo,
} from './auth.ts';
import { parseBool, reportedParameters, truncateName } from './parameters.ts';

export type ServerState =
  | 'PEEK' // ProcessSSLStartup: pq_peekbyte() on the first byte
  | 'DIRECT_TLS' // ProcessSSLStartup → secure_open_server: direct TLS handshake running
  | 'STARTUP_PACKET' // ProcessStartupPacket `retry:` loop: awaiting a (pre-)startup packet
  | 'TLS_HANDSHAKE' // after 'S': secure_open_server running
  | 'AUTHENTICATING' // ClientAuthentication (see authState)
  | 'READY' // ReadyForQuery sent, the connection belongs to the application
  | 'CLOSED';

/** Sub-states of AUTHENTICATING, one per exchange step (auth.c / auth-sasl.c). */
export type ServerAuthState =
  | 'provider' // waiting for the application's AuthPlan (hba_getauthmethod + get_role_password)
  | 'password' // AuthenticationCleartextPassword sent: recv_password_packet
  | 'md5' // AuthenticationMD5Password sent: recv_password_packet
  | 'sasl-initial' // AuthenticationSASL sent: awaiting SASLInitialResponse
  | 'sasl-first' // empty SASLContinue sent (no initial response): awaiting the client-first-message
  | 'sasl-final'; // server-first-message sent: awaiting the client-final-message

export type ServerEvent =
  | { type: 'data'; bytes: Uint8Array }
  | { type: 'tlsEstablished'; info: ServerTlsInfo }
  | { type: 'tlsFailed'; error: Error }
  | { type: 'closed'; error?: Error }
  /** authentication_timeout expired (the driver's timer, started at accept). */
  | { type: 'timeout' };

/** Why the connection ends; `logMessage` carries PostgreSQL's log text where it has one. */
export type ServerCloseReason =
  | 'client-closed' // EOF from the client
  | 'timeout' // authentication_timeout
  | 'protocol-violation' // bad length, bytes where none may be, malformed message
  | 'unsupported-protocol' // major version other than 3
  | 'direct-tls-rejected' // 0x16 first byte without direct TLS configured, or no ALPN
  | 'tls-failed' // handshake failed / unexpected ALPN
  | 'cancel-request' // CancelRequest handed over; nothing is sent back
  | 'rejected' // refused before authentication: no user, pg_hba-style policy, reject plan
  | 'auth-failed' // wrong password, failed proof, certificate mismatch
  | 'internal-error'; // the auth provider or verify callback threw

export type ServerAction =
  | { type: 'write'; bytes: Uint8Array }
  /**
   * Upgrade this socket to server-side TLS in place (ALPN `postgresql` offered by us). `replay`:
   * bytes already read that belong to the TLS handshake and must be fed to it first — the pipelined
   * ClientHello of a direct connection; always empty after SSLRequest (CVE-2021-23214: nothing read
   * in plaintext is ever carried across). Request, but do not require, a client certificate when a
   * CA is configured, and report the result in `tlsEstablished.info`.
   */
  | { type: 'startTls'; direct: boolean; replay: Uint8Array }
  /** A CancelRequest for the application to act on (compare keys in constant time); close follows. */
  | { type: 'cancel'; processId: number; secretKey: Uint8Array }
  | { type: 'ready'; session: ServerSession }
  | { type: 'close'; reason: ServerCloseReason; logMessage?: string; error?: PgConnError };

/** What the application receives with `ready`. */
export interface ServerSession {
  user: string;
  /** '' for a physical replication connection (replication=true), as in PostgreSQL. */
  database: string;
  /** Startup parameters as the client sent them, `_pq_.*` options excluded. */
  parameters: Map<string, string>;
  /** `_pq_.*` options the client requested (none are supported: all were reported unrecognised). */
  protocolOptions: Map<string, string>;
  /** Negotiated version: Min(requested, 3.2), e.g. 0x00030000; 3.1 is kept as requested (PostgreSQL 18). */
  protocolVersion: number;
  /** The version in the StartupMessage (e.g. the 3.9999 grease version). */
  requestedProtocolVersion: number;
  replication: boolean | 'database';
  tls: ServerTlsInfo | null;
  direct: boolean;
  authMethod: ServerAuthMethod;
  /** Sent in BackendKeyData: 4-byte key below 3.2, 32 bytes from 3.2 on (the grease version counts). */
  backendKey: { processId: number; secretKey: Uint8Array };
  /** What was reported in ParameterStatus. */
  serverParameters: Map<string, string>;
  /** Bytes received after the startup exchange (pipelined queries): the session's reader starts here. */
  leftover: Uint8Array;
}

export interface ServerTlsConfig {
  /** Our leaf certificate (DER): its tls-server-end-point hash binds SCRAM-SHA-256-PLUS. */
  certificate?: Uint8Array;
  /** The hash itself, precomputed; wins over `certificate`. */
  channelBindingHash?: Uint8Array;
}

export interface ServerHandshakeConfig {
  auth: AuthProvider;
  /** Present when the driver can do server-side TLS (PostgreSQL's `ssl = on`). */
  tls?: ServerTlsConfig | null;
  /** Accept direct TLS (first byte 0x16, ALPN `postgresql` required; PostgreSQL 17+). Needs `tls`. */
  directTls?: boolean;
  /** Refuse plaintext sessions (every pg_hba line `hostssl`). */
  requireTls?: boolean;
  /** Allow `replication=true|database` startup packets (pg_hba `replication` lines). */
  replication?: boolean;
  /** ParameterStatus overrides (e.g. server_version); null drops a default. */
  serverParameters?: Readonly<Record<string, string | null>>;
  /** scram_iterations: reported, and used for mock secrets (CVE-2026-14672). Default 4096. */
  scramIterations?: number;
  /**
   * Secret seed for mock SCRAM salts of unknown roles (PostgreSQL's mock authentication nonce). Keep
   * it stable across connections and restarts, or the salt changing reveals that a role is unknown.
   * Default: random per process.
   */
  mockAuthSecret?: Uint8Array | string;
}

export interface ServerStep {
  state: ServerState;
  detail: string;
}

export interface ServerConnectionOptions {
  /** Peer address for messages and the auth provider (PostgreSQL's remote_host). */
  remoteHost?: string;
  /** Unix-domain socket: SSLRequest is answered 'N' and direct TLS refused, as in PostgreSQL. */
  isUnixSocket?: boolean;
  /** BackendKeyData process ID; default: a per-process counter. */
  processId?: number;
  onStep?: (step: ServerStep) => void;
}

/** A FATAL ErrorResponse to write before closing. */
interface Fatal {
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  reason: ServerCloseReason;
  /** Server-side detail for the log (PostgreSQL's logdetail), never sent. */
  log?: string;
}

const TERMINAL = new Set<ServerState>(['READY', 'CLOSED']);
const TLS_RECORD_HANDSHAKE = 0x16;
const PASSWORD_MESSAGE = 0x70; // 'p'
const EMPTY = new Uint8Array(0);

let processIdCounter = 1000;
/**
 * tls-server-end-point hashes by certificate object. A server passes the same ServerTlsConfig to every
 * connection; mutating the certificate bytes in place afterwards is not supported.
 */
const endPointHashes = new WeakMap<Uint8Array, Promise<Uint8Array>>();
let processMockSecret: Uint8Array | null = null;

const readU32 = (b: Uint8Array, at: number): number =>
  ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

const describeError = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export class ServerHandshake {
  state: ServerState = 'PEEK';
  authState: ServerAuthState | null = null;
  private readonly cfg: ServerHandshakeConfig;
  private readonly remoteHost: string;
  private readonly isUnixSocket: boolean;
  private readonly processId: number;
  private readonly onStep: ((step: ServerStep) => void) | undefined;
  private readonly framer = new Framer({ maxMessageLength: PG_MAX_AUTH_TOKEN_LENGTH });
  private readonly writer = new Writer(256);
  /** Data/TLS events run one after another; timeout/closed jump the queue. */
  private tail: Promise<unknown> = Promise.resolve();

  // ProcessStartupPacket's flags: each negotiation request is answered at most once.
  private sslDone = false;
  private gssDone = false;
  private tls: ServerTlsInfo | null = null;
  private direct = false;

  // Filled in from the StartupMessage.
  private user = '';
  private database = '';
  private parameters = new Map<string, string>();
  private protocolOptions = new Map<string, string>();
  private requestedVersion = 0;
  private protocolVersion = 0;
  private replication: boolean | 'database' = false;

  // Authentication exchange.
  private plan: AuthPlan | null = null;
  private md5Salt: Uint8Array = EMPTY;
  private md5Stored: string | null = null;
  private scramVerifier: ScramVerifier | null = null;
  private scramDoomed = false;
  private cbindHash: Uint8Array | null = null;
  private mechanisms: string[] = [];
  private mechanism = '';
  private scram: ScramServer | null = null;

  constructor(config: ServerHandshakeConfig, options: ServerConnectionOptions = {}) {
    this.cfg = config;
    this.remoteHost = options.remoteHost ?? (options.isUnixSocket ? '[local]' : '[unknown]');
    this.isUnixSocket = options.isUnixSocket ?? false;
    this.processId = options.processId ?? nextProcessId();
    this.onStep = options.onStep;
  }

  /** Nothing to send first: the client speaks first. For symmetry with ClientHandshake. */
  start(): ServerAction[] {
    this.step(this.state, `connection received: host=${this.remoteHost}`);
    return [];
  }

  /** Feeds one event; returns the actions to perform, in order. Never throws. */
  async handle(event: ServerEvent): Promise<ServerAction[]> {
    if (TERMINAL.has(this.state)) return [];
    if (event.type === 'timeout' || event.type === 'closed') {
      try {
        return event.type === 'timeout' ? this.onTimeout() : this.onClosed(event.error);
      } catch (e) {
        return this.internalError(e);
      }
    }
    const run = this.tail.then(async () => {
      const out = await this.process(event);
      // A timeout or EOF that arrived meanwhile has closed the connection: what was computed is void.
      if (this.closed && !out.some((a) => a.type === 'close')) return [];
      return out;
    });
    this.tail = run.catch(() => undefined);
    return run.catch((e: unknown) => this.internalError(e));
  }

  private async process(event: ServerEvent): Promise<ServerAction[]> {
    if (TERMINAL.has(this.state)) return [];
    try {
      switch (event.type) {
        case 'data':
          return await this.onData(event.bytes);
        case 'tlsEstablished':
          return await this.onTlsEstablished(event.info);
        case 'tlsFailed':
          return this.onTlsFailed(event.error);
        default:
          return [];
      }
    } catch (e) {
      if (this.closed) return [];
      return this.internalError(e);
    }
  }

  /** A getter, so TypeScript does not narrow `state` across the awaits after which it is re-checked. */
  private get closed(): boolean {
    return this.state === 'CLOSED';
  }

  private step(state: ServerState, detail: string): void {
    this.state = state;
    this.onStep?.({ state, detail });
  }

  // -------------------------------------------------------------------------------------------------
  // Events

  private onTimeout(): ServerAction[] {
    // PostgreSQL sends nothing on authentication_timeout: StartupPacketTimeoutHandler _exit(1)s while
    // the packet is awaited, and during authentication ProcessInterrupts turns output to the client
    // off ("As in quickdie, don't risk sending to client during auth") before its FATAL 57014.
    const log =
      this.state === 'AUTHENTICATING'
        ? 'canceling authentication due to timeout'
        : 'timeout while waiting for the startup packet';
    return this.close('timeout', log);
  }

  private onClosed(error: Error | undefined): ServerAction[] {
    let log: string | undefined;
    if (this.state === 'STARTUP_PACKET') {
      const n = this.framer.buffered;
      // ProcessStartupPacket: no byte at all is normal (health checks, a client refusing 'N'); a
      // partial length word is only worth a log line before any SSL/GSS exchange.
      if (n >= 4 || (n > 0 && !this.sslDone && !this.gssDone)) log = 'incomplete startup packet';
    } else if (this.state === 'DIRECT_TLS' || this.state === 'TLS_HANDSHAKE') {
      log = 'could not accept SSL connection: EOF detected';
    }
    if (error && !log) log = sslErrorLog(error) ?? `connection closed: ${error.message}`;
    return this.close('client-closed', log);
  }

  private onTlsFailed(error: Error): ServerAction[] {
    if (this.state !== 'DIRECT_TLS' && this.state !== 'TLS_HANDSHAKE') {
      return this.close('protocol-violation', `unexpected TLS failure in state ${this.state}`);
    }
    // secure_open_server failed; OpenSSL has sent its alert, PostgreSQL sends nothing more. A
    // transport that lacks what the TLS options ask for keeps its typed error for the application.
    const typed = error instanceof UnsupportedError ? error : undefined;
    return this.close('tls-failed', `could not accept SSL connection: ${error.message}`, typed);
  }

  private async onTlsEstablished(info: ServerTlsInfo): Promise<ServerAction[]> {
    const alpn = info.alpnProtocol ?? null;
    if (this.state === 'DIRECT_TLS') {
      // ProcessSSLStartup: without ALPN a direct connection could be another protocol's TLS client
      // talking to us by mistake (ALPACA-style confusion).
      if (alpn !== ALPN_POSTGRESQL) {
        return this.close(
          'direct-tls-rejected',
          'received direct SSL connection request without ALPN protocol negotiation extension',
        );
      }
      this.tls = info;
      this.direct = true;
      // ProcessStartupPacket(port, false, false): a later SSLRequest/GSSENCRequest gets 'N'.
      this.step('STARTUP_PACKET', `direct SSL connection accepted (${describeTls(info)})`);
      return this.pump();
    }
    if (this.state === 'TLS_HANDSHAKE') {
      // alpn_cb: no ALPN is fine after SSLRequest (libpq < 17); another protocol never is.
      if (alpn !== null && alpn !== ALPN_POSTGRESQL) {
        return this.close('tls-failed', `SSL connection negotiated unexpected ALPN protocol "${alpn}"`);
      }
      this.tls = info;
      this.step('STARTUP_PACKET', `SSL connection established (${describeTls(info)})`);
      return this.pump();
    }
    return this.close('protocol-violation', `unexpected TLS handshake completion in state ${this.state}`);
  }

  private async onData(bytes: Uint8Array): Promise<ServerAction[]> {
    if (this.state === 'DIRECT_TLS' || this.state === 'TLS_HANDSHAKE') {
      // While the handshake runs, every byte belongs to the TLS layer; plaintext here is injected.
      return this.close('protocol-violation', 'received unencrypted data during the SSL handshake');
    }
    this.framer.push(bytes);
    return this.pump();
  }

  /** Consumes whatever the buffered bytes allow in the current state. */
  private async pump(): Promise<ServerAction[]> {
    const out: ServerAction[] = [];
    for (;;) {
      switch (this.state) {
        case 'PEEK': {
          const first = this.framer.peekByte();
          if (first === -1) return out;
          // A startup length can never start with 0x16 (that would be hundreds of MB).
          if (first === TLS_RECORD_HANDSHAKE) return [...out, ...this.directTls()];
          this.step('STARTUP_PACKET', 'not a direct SSL connection');
          continue;
        }
        case 'STARTUP_PACKET': {
          let body: Uint8Array | null;
          try {
            body = this.framer.nextUntyped(STARTUP_MIN_LENGTH, STARTUP_MAX_LENGTH);
          } catch {
            // COMMERROR 08P01, logged only: nothing is sent to the client.
            return [...out, ...this.close('protocol-violation', 'invalid length of startup packet')];
          }
          if (body === null) return out;
          out.push(...(await this.onStartupPacket(body)));
          continue;
        }
        case 'AUTHENTICATING': {
          if (this.authState === 'provider' || this.authState === null) return out;
          const actions = await this.onAuthMessage();
          if (actions === null) return out;
          out.push(...actions);
          continue;
        }
        default:
          return out;
      }
    }
  }

  // -------------------------------------------------------------------------------------------------
  // ProcessSSLStartup and ProcessStartupPacket

  private directTls(): ServerAction[] {
    // No message: the client sees EOF (§5: ssl off or a Unix socket → reject).
    if (!this.cfg.directTls || !this.cfg.tls || this.isUnixSocket) {
      return this.close('direct-tls-rejected', 'direct SSL connection rejected');
    }
    // secure_open_server moves the already-read bytes (the ClientHello) into the TLS input.
    const replay = this.framer.rest().slice();
    this.step('DIRECT_TLS', 'direct SSL connection: starting TLS');
    return [{ type: 'startTls', direct: true, replay }];
  }

  private async onStartupPacket(body: Uint8Array): Promise<ServerAction[]> {
    const code = readU32(body, 0);
    if (code === CANCEL_REQUEST_CODE) return this.onCancelRequest(body);
    if (code === SSL_REQUEST_CODE && !this.sslDone) return this.onSslRequest();
    if (code === GSSENC_REQUEST_CODE && !this.gssDone) return this.onGssRequest();
    // Anything else is a protocol version — including a repeated SSLRequest/GSSENCRequest, which
    // then fails as "unsupported frontend protocol 1234.5679". This loop-with-flags replaced the
    // recursion that alternating requests could drive into a stack overflow (CVE-2026-6479).
    return this.onStartupMessage(code, body);
  }

  private onCancelRequest(body: Uint8Array): ServerAction[] {
    let packet: ReturnType<typeof decodeStartupPacket>;
    try {
      packet = decodeStartupPacket(body);
    } catch (e) {
      // ProcessCancelRequestPacket: COMMERROR for a bad length or a 0 / >256-byte key; no reply.
      return this.close('protocol-violation', describeError(e));
    }
    if (packet.type !== 'CancelRequest') return this.close('protocol-violation', 'invalid cancel request');
    const { processId, secretKey } = packet;
    this.step(this.state, `cancel request for process ${processId}`);
    return [
      { type: 'cancel', processId, secretKey: secretKey.slice() },
      ...this.close('cancel-request', undefined),
    ];
  }

  private onSslRequest(): ServerAction[] {
    // 'N' when SSL is off, on a Unix socket, or already in use (a direct connection).
    const accept = !!this.cfg.tls && !this.isUnixSocket && this.tls === null;
    // CVE-2021-23214: bytes that arrived with the SSLRequest were sent in plaintext, possibly by a
    // man in the middle; they must never be read as if they came through TLS.
    const injected = this.framer.buffered > 0;
    this.sslDone = true;
    if (accept) {
      if (injected) {
        // PostgreSQL ≤16 did the handshake and then sent FATAL; 17+ feeds the bytes to OpenSSL, which
        // fails. We start no TLS at all: nothing was sent, the bytes are dropped unread.
        return this.close(
          'protocol-violation',
          'received unencrypted data after SSL request',
          new ProtocolError('received unencrypted data after SSL request'),
        );
      }
      this.gssDone = true; // a successful negotiation of either layer ends both
      encodeNegotiationReply(this.writer, 'ssl');
      const bytes = this.writer.take();
      this.step('TLS_HANDSHAKE', "SSLRequest accepted ('S'), starting TLS");
      return [
        { type: 'write', bytes },
        { type: 'startTls', direct: false, replay: EMPTY },
      ];
    }
    encodeNegotiationReply(this.writer, 'refused');
    this.step('STARTUP_PACKET', "SSLRequest rejected ('N')");
    if (injected) {
      // The check sits after the reply for 'N' as well (pq_buffer_remaining_data() > 0).
      return this.fatal({
        code: '08P01',
        message: 'received unencrypted data after SSL request',
        detail:
          'This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.',
        reason: 'protocol-violation',
      });
    }
    return [{ type: 'write', bytes: this.writer.take() }];
  }

  private onGssRequest(): ServerAction[] {
    // No GSSAPI here: always 'N' — also after direct TLS, where accepting would run GSS underneath
    // TLS (CVE-2026-14681).
    this.gssDone = true;
    encodeNegotiationReply(this.writer, 'refused');
    this.step('STARTUP_PACKET', "GSSENCRequest rejected ('N')");
    if (this.framer.buffered > 0) {
      return this.fatal({
        code: '08P01',
        message: 'received unencrypted data after GSSAPI encryption request',
        detail:
          'This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.',
        reason: 'protocol-violation',
      });
    }
    return [{ type: 'write', bytes: this.writer.take() }];
  }

  private async onStartupMessage(code: number, body: Uint8Array): Promise<ServerAction[]> {
    const major = code >>> 16;
    const minor = code & 0xffff;
    if (major !== 3) {
      const message = `unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.2`;
      if (major < 3) {
        // FrontendProtocol < 3: elog.c sends the pre-3.0 format, 'E' + "FATAL:  msg\n" + NUL.
        this.writer.u8(0x45).text(`FATAL:  ${message}\n`).u8(0);
        const bytes = this.writer.take();
        return [
          { type: 'write', bytes },
          ...this.close('unsupported-protocol', message, new ProtocolError(message)),
        ];
      }
      return this.fatal({ code: '0A000', message, reason: 'unsupported-protocol' });
    }
    this.requestedVersion = code;
    // FrontendProtocol = Min(proto, PG_PROTOCOL_LATEST). 3.1 (reserved) is below 3.2, so PostgreSQL
    // 18 takes it as requested, without NegotiateProtocolVersion: so do we.
    this.protocolVersion = Math.min(code, PROTOCOL_3_2);

    let packet: ReturnType<typeof decodeStartupPacket>;
    try {
      packet = decodeStartupPacket(body);
    } catch (e) {
      // Missing terminator (PostgreSQL's wording) or a duplicate name (PostgreSQL lets the later one
      // win; our decoder refuses the ambiguity).
      return this.fatal({ code: '08P01', message: describeError(e), reason: 'protocol-violation' });
    }
    if (packet.type !== 'StartupMessage') {
      return this.fatal({ code: '08P01', message: 'invalid startup packet', reason: 'protocol-violation' });
    }
    for (const [name, value] of packet.parameters) {
      if (name.startsWith('_pq_.')) {
        // Reserved for protocol options; we support none, so each is reported back as unrecognised.
        this.protocolOptions.set(name, value);
        continue;
      }
      this.parameters.set(name, value);
      if (name === 'replication') {
        const b = value === 'database' ? 'database' : parseBool(value);
        if (b === null) {
          return this.fatal({
            code: '22023',
            message: `invalid value for parameter "replication": "${value}"`,
            hint: 'Valid values are: "false", 0, "true", 1, "database".',
            reason: 'rejected',
          });
        }
        this.replication = b;
      }
    }
    if (minor > 2 || this.protocolOptions.size > 0) {
      // SendNegotiateProtocolVersion: not flushed, it goes out with the next message.
      encodeBackend(this.writer, {
        type: 'NegotiateProtocolVersion',
        version: this.protocolVersion,
        unrecognizedOptions: [...this.protocolOptions.keys()],
      });
    }
    const user = this.parameters.get('user') ?? '';
    if (user === '') {
      return this.fatal({
        code: '28000',
        message: 'no PostgreSQL user name specified in startup packet',
        reason: 'rejected',
      });
    }
    this.user = truncateName(user);
    this.database = truncateName(this.parameters.get('database') || user);
    // A physical walsender is connected to no database.
    if (this.replication === true) this.database = '';
    const v = this.protocolVersion;
    this.step(
      'STARTUP_PACKET',
      `StartupMessage: user=${this.user} database=${this.database} protocol ${v >>> 16}.${v & 0xffff}`,
    );

    // pg_hba.conf-style refusals, with hba.c's wording (every line hostssl / no replication line).
    const enc = this.tls ? 'SSL encryption' : 'no encryption';
    if (this.replication !== false && !this.cfg.replication) {
      return this.fatal({
        code: '28000',
        message: `no pg_hba.conf entry for replication connection from host "${this.remoteHost}", user "${this.user}", ${enc}`,
        reason: 'rejected',
      });
    }
    if (this.cfg.requireTls && !this.tls) {
      return this.fatal({
        code: '28000',
        message: `no pg_hba.conf entry for host "${this.remoteHost}", user "${this.user}", database "${this.database}", ${enc}`,
        reason: 'rejected',
      });
    }
    return this.askProvider();
  }

  // -------------------------------------------------------------------------------------------------
  // ClientAuthentication

  private async askProvider(): Promise<ServerAction[]> {
    this.authState = 'provider';
    this.step('AUTHENTICATING', 'asking the auth provider');
    const request: AuthRequest = {
      user: this.user,
      database: this.database,
      replication: this.replication,
      tls: this.tls,
      direct: this.direct,
      remoteHost: this.remoteHost,
      parameters: this.parameters,
      protocolVersion: this.protocolVersion,
    };
    let plan: AuthPlan;
    try {
      plan = await this.cfg.auth(request);
    } catch (e) {
      return this.closed ? [] : this.internalError(e);
    }
    if (this.closed) return [];
    this.plan = plan;
    return this.startAuth(plan);
  }

  private async startAuth(plan: AuthPlan): Promise<ServerAction[]> {
    switch (plan.method) {
      case 'trust':
        return this.authenticated('trust');
      case 'reject': {
        const enc = this.tls ? 'SSL encryption' : 'no encryption';
        const message =
          plan.message ??
          (this.replication !== false
            ? `pg_hba.conf rejects replication connection for host "${this.remoteHost}", user "${this.user}", ${enc}`
            : `pg_hba.conf rejects connection for host "${this.remoteHost}", user "${this.user}", database "${this.database}", ${enc}`);
        return this.fatal({ code: '28000', message, reason: 'rejected' });
      }
      case 'cert':
        return this.certAuth();
      case 'password':
        encodeBackend(this.writer, { type: 'AuthenticationCleartextPassword' });
        return this.request('password', 'sent AuthenticationCleartextPassword');
      case 'md5': {
        const stored = plan.storedVerifier;
        // CheckPWChallengeAuth: a role whose secret is SCRAM is authenticated with SCRAM even
        // under md5, since an MD5 response cannot be checked against it.
        const scram = stored === null ? null : parseScramVerifier(stored);
        if (scram) return this.startSasl(scram);
        this.md5Stored = stored;
        this.md5Salt = randomBytes(4);
        encodeBackend(this.writer, { type: 'AuthenticationMD5Password', salt: this.md5Salt });
        return this.request('md5', 'sent AuthenticationMD5Password');
      }
      case 'scram-sha-256': {
        const v = typeof plan.verifier === 'string' ? parseScramVerifier(plan.verifier) : plan.verifier;
        return this.startSasl(v);
      }
      default: {
        const unknown: never = plan;
        return this.internalError(
          new Error(
            `unknown authentication method ${JSON.stringify((unknown as { method: unknown }).method)}`,
          ),
        );
      }
    }
  }

  private request(state: ServerAuthState, detail: string): ServerAction[] {
    this.authState = state;
    this.step('AUTHENTICATING', detail);
    return [{ type: 'write', bytes: this.writer.take() }];
  }

  /** CheckSASLAuth with the SCRAM mechanism; `verifier` null runs the mock exchange. */
  private async startSasl(verifier: ScramVerifier | null): Promise<ServerAction[]> {
    const iterations = this.cfg.scramIterations ?? 4096;
    if (verifier === null) {
      // mock_scram_secret: same salt for the same unknown name, the configured iteration count.
      this.scramVerifier = await mockVerifier(this.user, this.mockSecret(), iterations);
      this.scramDoomed = true;
    } else {
      this.scramVerifier = verifier;
    }
    if (this.closed) return [];
    this.cbindHash = this.tls ? await this.channelBindingHash() : null;
    if (this.closed) return [];
    // PLUS first and only over TLS (and only when we know what to bind to).
    this.mechanisms = this.cbindHash ? ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] : ['SCRAM-SHA-256'];
    encodeBackend(this.writer, { type: 'AuthenticationSASL', mechanisms: this.mechanisms });
    return this.request('sasl-initial', `sent AuthenticationSASL (${this.mechanisms.join(', ')})`);
  }

  private async channelBindingHash(): Promise<Uint8Array | null> {
    const t = this.cfg.tls;
    if (t?.channelBindingHash && t.channelBindingHash.length > 0) return t.channelBindingHash;
    if (!t?.certificate) return null;
    // Parsing the certificate costs ~1 ms: once per certificate, not once per connection.
    let hash = endPointHashes.get(t.certificate);
    if (!hash) {
      hash = tlsServerEndPointHash(t.certificate);
      endPointHashes.set(t.certificate, hash);
    }
    try {
      return await hash;
    } catch (e) {
      // An Ed25519 certificate has no tls-server-end-point hash: plain SCRAM still works.
      this.step(this.state, `no channel binding: ${describeError(e)}`);
      return null;
    }
  }

  private mockSecret(): Uint8Array | string {
    if (this.cfg.mockAuthSecret !== undefined) return this.cfg.mockAuthSecret;
    processMockSecret ??= globalThis.crypto.getRandomValues(new Uint8Array(32));
    return processMockSecret;
  }

  /**
   * The next 'p' message of the exchange. Returns null while it has not fully arrived. The type is
   * checked before the length (recv_password_packet reads it first); an over-long message closes
   * without a reply, like pq_getmessage's "invalid message length" → EOF.
   */
  private async onAuthMessage(): Promise<ServerAction[] | null> {
    const sasl = this.authState !== 'password' && this.authState !== 'md5';
    const type = this.framer.peekByte();
    if (type === -1) return null;
    if (type !== PASSWORD_MESSAGE) {
      return this.fatal({
        code: '08P01',
        message: `expected ${sasl ? 'SASL' : 'password'} response, got message type ${type}`,
        reason: 'protocol-violation',
      });
    }
    let frame: ReturnType<Framer['next']>;
    try {
      frame = this.framer.next();
    } catch {
      return this.close('protocol-violation', 'invalid message length');
    }
    if (frame === null) return null;
    if (sasl && frame.body.length + 4 > PG_MAX_SASL_MESSAGE_LENGTH) {
      return this.close('protocol-violation', 'invalid message length');
    }
    switch (this.authState) {
      case 'password':
      case 'md5': {
        const msg = this.decode(frame, 'password');
        if (msg?.type !== 'PasswordMessage') {
          return this.fatal({
            code: '08P01',
            message: 'invalid password packet size',
            reason: 'protocol-violation',
          });
        }
        return this.checkPassword(msg.password);
      }
      case 'sasl-initial': {
        const msg = this.decode(frame, 'sasl-initial');
        if (msg?.type !== 'SASLInitialResponse') {
          return this.fatal({
            code: '08P01',
            message: 'invalid SASL initial response',
            reason: 'protocol-violation',
          });
        }
        if (!this.mechanisms.includes(msg.mechanism)) {
          return this.fatal({
            code: '08P01',
            message: 'client selected an invalid SASL authentication mechanism',
            reason: 'protocol-violation',
          });
        }
        this.mechanism = msg.mechanism;
        this.scram = new ScramServer({
          verifier: this.scramVerifier!,
          mechanism: msg.mechanism,
          channelBinding: this.cbindHash,
          plusAdvertised: this.cbindHash !== null,
          doomed: this.scramDoomed,
        });
        if (msg.data === null) {
          // No initial response: an empty challenge, answered with the client-first-message.
          encodeBackend(this.writer, { type: 'AuthenticationSASLContinue', data: EMPTY });
          return this.request('sasl-first', 'sent empty AuthenticationSASLContinue');
        }
        return this.scramFirst(msg.data);
      }
      case 'sasl-first':
        return this.scramFirst(frame.body);
      case 'sasl-final':
        return this.scramFinal(frame.body);
      default:
        return null;
    }
  }

  private decode(
    frame: { type: number; body: Uint8Array },
    kind: PasswordMessageKind,
  ): FrontendMessage | null {
    try {
      return decodeFrontend(frame, { passwordMessage: kind });
    } catch {
      return null;
    }
  }

  private async checkPassword(password: string): Promise<ServerAction[]> {
    // CVE-2017-7546: an empty password never authenticates, whatever the check behind it would say.
    if (password === '') {
      return this.fatal({
        code: '28P01',
        message: 'empty password returned by client',
        reason: 'auth-failed',
      });
    }
    let ok: boolean;
    let method: ServerAuthMethod;
    if (this.authState === 'md5') {
      method = 'md5';
      const stored = this.md5Stored;
      // Unknown role: compare against a throwaway verifier anyway, so the work done is the same.
      const against = stored ?? `md5${'0'.repeat(32)}`;
      ok = verifyMd5Response(against, this.md5Salt, password) && stored !== null;
    } else {
      method = 'password';
      const plan = this.plan;
      if (plan?.method !== 'password') return this.internalError(new Error('no password plan'));
      try {
        ok = (await plan.verify(password)) === true;
      } catch (e) {
        return this.closed ? [] : this.internalError(e);
      }
      if (this.closed) return [];
    }
    if (!ok) return this.passwordFailed();
    return this.authenticated(method);
  }

  private scramFirst(clientFirst: Uint8Array): ServerAction[] {
    let serverFirst: Uint8Array;
    try {
      serverFirst = this.scram!.handleClientFirst(clientFirst);
    } catch (e) {
      return this.fatal(this.scramFailure(e));
    }
    encodeBackend(this.writer, { type: 'AuthenticationSASLContinue', data: serverFirst });
    return this.request('sasl-final', 'sent SCRAM server-first-message');
  }

  private async scramFinal(clientFinal: Uint8Array): Promise<ServerAction[]> {
    let serverFinal: Uint8Array;
    try {
      serverFinal = await this.scram!.handleClientFinal(clientFinal);
    } catch (e) {
      if (this.closed) return [];
      return this.fatal(this.scramFailure(e));
    }
    if (this.closed) return [];
    encodeBackend(this.writer, { type: 'AuthenticationSASLFinal', data: serverFinal });
    return this.authenticated(
      this.mechanism === 'SCRAM-SHA-256-PLUS' ? 'SCRAM-SHA-256-PLUS' : 'SCRAM-SHA-256',
    );
  }

  /** auth-scram.c's error reports: which failures are protocol errors and which a failed login. */
  private scramFailure(e: unknown): Fatal {
    const message = describeError(e);
    if (e instanceof AuthError) {
      if (message.startsWith('SCRAM channel binding negotiation error')) {
        return {
          code: '08P01',
          message: 'SCRAM channel binding negotiation error',
          detail:
            'The client supports SCRAM channel binding but thinks the server does not.  However, this server does support channel binding.',
          reason: 'protocol-violation',
        };
      }
      if (message === 'SCRAM channel binding check failed') {
        return { code: '28000', message, reason: 'auth-failed' };
      }
      if (
        message.startsWith('client uses authorization identity') ||
        message.includes('unsupported SCRAM extension')
      ) {
        return { code: '0A000', message, reason: 'protocol-violation' };
      }
      // Wrong proof or a mock secret: the same words as a wrong password, whichever it was.
      return { ...this.passwordFailure(), log: message };
    }
    if (e instanceof ProtocolError) return { code: '08P01', message, reason: 'protocol-violation' };
    return {
      code: 'XX000',
      message: 'internal error during SCRAM authentication',
      reason: 'internal-error',
      log: message,
    };
  }

  private passwordFailure(): Fatal {
    return {
      code: '28P01',
      message: `password authentication failed for user "${this.user}"`,
      reason: 'auth-failed',
    };
  }

  private passwordFailed(): ServerAction[] {
    return this.fatal(this.passwordFailure());
  }

  /** uaCert: a verified client certificate whose first CN is the user name (CheckCertAuth). */
  private certAuth(): ServerAction[] {
    if (!this.tls) {
      // `cert` exists only on hostssl lines: a plaintext connection matches none.
      return this.fatal({
        code: '28000',
        message: `no pg_hba.conf entry for host "${this.remoteHost}", user "${this.user}", database "${this.database}", no encryption`,
        reason: 'rejected',
      });
    }
    const der = this.tls.peerCertificate;
    // peer_cert_valid: a certificate was received and its chain verified.
    if (!der || der.length === 0 || !this.tls.authorized) {
      return this.fatal({
        code: '28000',
        message: 'connection requires a valid client certificate',
        reason: 'auth-failed',
        log: this.tls.authorizationError ?? 'no verified client certificate',
      });
    }
    let cn: string | undefined;
    try {
      cn = certificateNames(der).commonNames[0];
    } catch {
      cn = undefined;
    }
    // Embedded NULs are refused outright (CVE-2009-4034); the comparison is exact, as without a map.
    if (cn === undefined || cn === '' || cn.includes('\0') || cn !== this.user) {
      return this.fatal({
        code: '28000',
        message: `certificate authentication failed for user "${this.user}"`,
        reason: 'auth-failed',
        log:
          cn === undefined || cn === ''
            ? 'client certificate contains no user name'
            : `provided user name (${this.user}) and authenticated user name (${cn}) do not match`,
      });
    }
    return this.authenticated('cert');
  }

  /** AuthenticationOk, then what PostgresMain sends before the first ReadyForQuery (§6.3). */
  private authenticated(method: ServerAuthMethod): ServerAction[] {
    encodeBackend(this.writer, { type: 'AuthenticationOk' });
    const serverParameters = reportedParameters(
      { user: this.user, parameters: this.parameters },
      {
        scramIterations: this.cfg.scramIterations ?? 4096,
        ...(this.cfg.serverParameters ? { overrides: this.cfg.serverParameters } : {}),
      },
    );
    for (const [name, value] of serverParameters) {
      encodeBackend(this.writer, { type: 'ParameterStatus', name, value });
    }
    // 32 random bytes when the client asked for ≥ 3.2 (the grease version included), else 4.
    const keyLength = this.requestedVersion >= PROTOCOL_3_2 ? 32 : 4;
    const secretKey = randomBytes(keyLength);
    encodeBackend(this.writer, { type: 'BackendKeyData', processId: this.processId, secretKey });
    encodeBackend(this.writer, { type: 'ReadyForQuery', status: 'I' });
    const bytes = this.writer.take();
    const session: ServerSession = {
      user: this.user,
      database: this.database,
      parameters: this.parameters,
      protocolOptions: this.protocolOptions,
      protocolVersion: this.protocolVersion,
      requestedProtocolVersion: this.requestedVersion,
      replication: this.replication,
      tls: this.tls,
      direct: this.direct,
      authMethod: method,
      backendKey: { processId: this.processId, secretKey: secretKey.slice() },
      serverParameters,
      leftover: this.framer.rest().slice(),
    };
    this.authState = null;
    this.step('READY', `authenticated (${method}), ready for query`);
    return [
      { type: 'write', bytes },
      { type: 'ready', session },
    ];
  }

  // -------------------------------------------------------------------------------------------------
  // Endings

  /** ereport(FATAL): the ErrorResponse (after anything still unflushed, e.g. NegotiateProtocolVersion), then close. */
  private fatal(f: Fatal): ServerAction[] {
    if (this.closed) return [];
    const fields: NoticeFields = {
      severity: 'FATAL',
      severityNonLocalized: 'FATAL',
      code: f.code,
      message: f.message,
    };
    if (f.detail !== undefined) fields.detail = f.detail;
    if (f.hint !== undefined) fields.hint = f.hint;
    encodeBackend(this.writer, { type: 'ErrorResponse', fields });
    const bytes = this.writer.take();
    const log = f.log ? `${f.message}: ${f.log}` : f.message;
    return [{ type: 'write', bytes }, ...this.close(f.reason, log, errorFor(f.reason, f.message))];
  }

  private internalError(e: unknown): ServerAction[] {
    if (this.closed) return [];
    // Something on our or the application's side broke; the client learns nothing about it.
    const log = `internal error during connection startup: ${describeError(e)}`;
    if (this.state === 'AUTHENTICATING') {
      return this.fatal({
        code: 'XX000',
        message: 'internal error during authentication',
        reason: 'internal-error',
        log: describeError(e),
      });
    }
    return this.close('internal-error', log);
  }

  private close(
    reason: ServerCloseReason,
    logMessage: string | undefined,
    error?: PgConnError,
  ): ServerAction[] {
    if (this.closed) return [];
    // Drop anything unsent (an unflushed NegotiateProtocolVersion) and every buffered byte unread.
    if (this.writer.length > 0) this.writer.take();
    this.framer.rest();
    this.authState = null;
    this.scram = null;
    this.step('CLOSED', logMessage ?? reason);
    const action: Extract<ServerAction, { type: 'close' }> = { type: 'close', reason };
    if (logMessage !== undefined) action.logMessage = logMessage;
    const err = error ?? (reason === 'cancel-request' ? undefined : errorFor(reason, logMessage ?? reason));
    if (err) action.error = err;
    return [action];
  }
}

function errorFor(reason: ServerCloseReason, message: string): PgConnError {
  switch (reason) {
    case 'client-closed':
    case 'timeout':
      return new ConnectionError(message, reason === 'timeout' ? 'timeout' : 'session');
    case 'direct-tls-rejected':
    case 'tls-failed':
      return new TlsError(message);
    case 'rejected':
    case 'auth-failed':
      return new AuthError(message);
    default:
      return new ProtocolError(message);
  }
}

function describeTls(info: ServerTlsInfo): string {
  const parts = [info.protocol, info.cipher, info.alpnProtocol ? `ALPN ${info.alpnProtocol}` : 'no ALPN'];
  if (info.peerCertificate)
    parts.push(info.authorized ? 'verified client certificate' : 'client certificate');
  return parts.filter(Boolean).join(', ');
}

function nextProcessId(): number {
  const id = processIdCounter;
  processIdCounter = processIdCounter >= 0x7fff_ffff ? 1000 : processIdCounter + 1;
  return id;
}
