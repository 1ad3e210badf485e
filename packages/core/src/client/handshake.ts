/**
 * The client negotiation for one address, libpq's PQconnectPoll as a sans-I/O state machine: it is fed
 * events (connected, bytes, TLS established/failed, closed, timeout) and answers with actions (connect,
 * write, start TLS, done, fail). Multi-host iteration sits above it; sockets and timers below it.
 *
 *   NEEDED ─connect→ STARTED ─connected→ MADE ─┬─ SSLRequest → SSL_STARTUP ─'S'→ SSL_HANDSHAKE ─┐
 *                                             ├─ direct TLS ──────────────────→ SSL_HANDSHAKE ─┤
 *                                             └─ StartupMessage → AWAITING_RESPONSE ←─ MADE ←──┘
 *   AWAITING_RESPONSE ─AuthenticationOk→ AUTH_OK ─ReadyForQuery→ OK
 *
 * Encryption fallback follows §3.5 of the reference: 'N' moves to the next method on the same socket;
 * a failed TLS handshake or an ErrorResponse before authentication completes reconnects with the next
 * method; 'E' to SSLRequest and plaintext after 'S' fail at once, with no fallback.
 */

import { tlsServerEndPointHash } from '../auth/channel-binding.ts';
import { md5PasswordResponse } from '../auth/md5.ts';
import { ScramClient } from '../auth/scram.ts';
import type { ScramKeyCache } from '../auth/scram-key-cache.ts';
import { type BackendMessage, decodeBackend } from '../codec/backend.ts';
import { ALPN_POSTGRESQL, AuthCode, BackendType, PROTOCOL_3_0, PROTOCOL_3_2 } from '../codec/constants.ts';
import { type Frame, Framer } from '../codec/framer.ts';
import { encodeFrontend } from '../codec/frontend.ts';
import { encodeCancelRequest, encodeSSLRequest, encodeStartupMessage } from '../codec/startup.ts';
import { Writer } from '../codec/writer.ts';
import {
  AuthError,
  ConnectionError,
  type NoticeFields,
  type PgConnError,
  ProtocolError,
  ServerError,
  TlsError,
  UnsupportedError,
} from '../errors.ts';
import { sslReason } from '../ssl-reason.ts';
import type { TlsClientOptions, TlsInfo, TlsVersion } from '../transport.ts';
import { setParameter } from './parameters.ts';
import { checkRequireAuth, checkSaslMechanism, REQUIRE_AUTH_ANY, type RequireAuth } from './require-auth.ts';
import {
  allowedEncryptionMethods,
  type EncryptionMethod,
  type GssEncMode,
  type SslMode,
  type SslNegotiation,
} from './sslmode.ts';
import { verifyHostName } from './verify.ts';

export type ChannelBindingMode = 'disable' | 'prefer' | 'require';

/** TLS material, already loaded from files by the caller (core reads no files). */
export interface TlsMaterial {
  /** Root certificates: PEM texts, 'system', or undefined when no root file exists. */
  rootCert?: string[] | 'system';
  /** The sslrootcert path, for error messages. */
  rootCertPath?: string;
  cert?: string | Uint8Array;
  key?: string | Uint8Array;
  passphrase?: string;
  crl?: string[];
  minVersion?: TlsVersion;
  maxVersion?: TlsVersion;
  /** sslsni=1 (default): send SNI when host is a name, not an IP literal. */
  sni?: boolean;
}

/** Everything the negotiation with one address needs; options parsing produces it. */
export interface HandshakeConfig {
  /** The `host` the user gave (SNI and verify-full); '' when only `hostaddr` was given. */
  host: string;
  isUnixSocket?: boolean;
  user: string;
  database?: string;
  password?: string;
  applicationName?: string;
  fallbackApplicationName?: string;
  options?: string;
  clientEncoding?: string;
  replication?: string;
  /** Extra startup parameters (e.g. datestyle from PGDATESTYLE), sent after the standard ones. */
  extraParameters?: ReadonlyArray<readonly [string, string]>;
  sslmode?: SslMode;
  sslnegotiation?: SslNegotiation;
  gssencmode?: GssEncMode;
  channelBinding?: ChannelBindingMode;
  requireAuth?: RequireAuth;
  tls?: TlsMaterial;
  /** Full protocol versions, e.g. 0x00030000; max is what the StartupMessage requests. */
  minProtocolVersion?: number;
  maxProtocolVersion?: number;
  /** Cap on the SCRAM iteration count a server may demand (CPU exhaustion guard). */
  scramMaxIterations?: number;
  /** Where SCRAM keys are kept between handshakes; default the process-wide cache, null: none. */
  scramKeyCache?: ScramKeyCache | null;
  /** Makes this a cancel connection: CancelRequest instead of StartupMessage, done when the server closes. */
  cancel?: { processId: number; secretKey: Uint8Array };
}

export type ClientState =
  | 'NEEDED' // CONNECTION_NEEDED: a socket must be opened
  | 'STARTED' // CONNECTION_STARTED: connect() in progress
  | 'MADE' // CONNECTION_MADE: socket up, choose SSLRequest / direct TLS / StartupMessage
  | 'SSL_STARTUP' // CONNECTION_SSL_STARTUP: SSLRequest sent, awaiting 'S'/'N'
  | 'SSL_HANDSHAKE' // CONNECTION_SSL_STARTUP (pgtls_open_client): TLS handshake running
  | 'AWAITING_RESPONSE' // CONNECTION_AWAITING_RESPONSE: StartupMessage sent, authenticating
  | 'AUTH_OK' // CONNECTION_AUTH_OK: collecting ParameterStatus/BackendKeyData until ReadyForQuery
  | 'OK' // CONNECTION_OK
  | 'BAD'; // CONNECTION_BAD

export type ClientEvent =
  | { type: 'connected' }
  | { type: 'data'; bytes: Uint8Array }
  | { type: 'tlsEstablished'; info: TlsInfo }
  | { type: 'tlsFailed'; error: Error }
  | { type: 'closed'; error?: Error }
  | { type: 'timeout' };

export type ClientAction =
  /** Open a new connection to the address; with `tls`, a direct TLS connection. */
  | { type: 'connect'; tls: TlsClientOptions | null }
  | { type: 'write'; bytes: Uint8Array }
  /** Upgrade the current socket in place (after 'S'). */
  | { type: 'startTls'; options: TlsClientOptions }
  /** Close the current socket before a reconnect. */
  | { type: 'close' }
  | { type: 'done'; result: HandshakeResult }
  | { type: 'fail'; error: PgConnError };

export type AuthMethodUsed = 'trust' | 'password' | 'md5' | 'SCRAM-SHA-256' | 'SCRAM-SHA-256-PLUS';

export interface HandshakeResult {
  encryption: EncryptionMethod;
  tls: TlsInfo | null;
  direct: boolean;
  authMethod: AuthMethodUsed;
  protocolVersion: number;
  parameters: Map<string, string>;
  backendKey: { processId: number; secretKey: Uint8Array } | null;
  transactionStatus: 'I' | 'T' | 'E';
  notices: NoticeFields[];
  /** Options the server did not recognise (NegotiateProtocolVersion). */
  unrecognizedOptions: string[];
  /** Bytes that arrived after ReadyForQuery; the connection's reader starts from them. */
  leftover: Uint8Array;
  /** TCP connections opened for this negotiation (fallbacks reconnect). */
  connections: number;
}

export interface HandshakeStep {
  state: ClientState;
  detail: string;
}

const SERVER_CLOSED =
  'server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while processing the request.';

const typeChar = (t: number): string => String.fromCharCode(t);

/** Types a server may send before AuthenticationOk ('R', 'E', 'v', and 'N', which we also accept). */
const STARTUP_TYPES: ReadonlySet<number> = new Set([
  BackendType.Authentication,
  BackendType.ErrorResponse,
  BackendType.NegotiateProtocolVersion,
  BackendType.NoticeResponse,
]);

/** libpq's VALID_LONG_MESSAGE_TYPE: the only types allowed over 30000 bytes. */
const LONG_TYPES: ReadonlySet<number> = new Set([
  BackendType.RowDescription,
  BackendType.DataRow,
  BackendType.CopyData,
  BackendType.FunctionCallResponse,
  BackendType.ErrorResponse,
  BackendType.NoticeResponse,
  BackendType.NotificationResponse,
]);

const isIpLiteral = (host: string): boolean => /^[0-9.]+$/.test(host) || host.includes(':');

/** Reasons after which libpq adds its protocol-version hint (fe-secure-openssl.c, open_client_SSL). */
const PROTOCOL_VERSION_REASONS = new Set([
  'no protocols available',
  'unsupported protocol',
  'bad protocol version number',
  'unknown protocol',
  'unknown ssl version',
  'unsupported ssl version',
  'wrong ssl version',
  'wrong version number',
  'tlsv1 alert protocol version',
  'version too high',
  'version too low',
]);

/** One negotiation with one address. Not reusable: create one per address. */
export class ClientHandshake {
  state: ClientState = 'NEEDED';
  private readonly cfg: HandshakeConfig;
  private readonly methods: EncryptionMethod[];
  private methodIndex = 0;
  private framer = new Framer();
  private readonly writer = new Writer(256);
  private readonly requireAuth: RequireAuth;
  private readonly channelBinding: ChannelBindingMode;
  private readonly onStep: ((step: HandshakeStep) => void) | undefined;

  // Per-connection state, reset on every reconnect (CVE-2018-10915: nothing leaks across attempts).
  private tls: TlsInfo | null = null;
  private direct = false;
  private scram: ScramClient | null = null;
  private scramDone = false;
  private finishedAuth = false;
  private authMethod: AuthMethodUsed = 'trust';
  private protocolVersion: number;
  private negotiated = false;
  private unrecognizedOptions: string[] = [];
  private parameters = new Map<string, string>();
  private backendKey: HandshakeResult['backendKey'] = null;
  private notices: NoticeFields[] = [];
  private connections = 0;
  private cancelSent = false;
  /** Errors of the attempts that fell back, reported with the final error. */
  readonly failures: PgConnError[] = [];

  constructor(config: HandshakeConfig, onStep?: (step: HandshakeStep) => void) {
    this.cfg = config;
    this.onStep = onStep;
    this.requireAuth = config.requireAuth ?? REQUIRE_AUTH_ANY;
    this.channelBinding = config.channelBinding ?? 'prefer';
    this.methods = allowedEncryptionMethods(
      config.sslmode ?? 'prefer',
      config.gssencmode ?? 'prefer',
      config.isUnixSocket ?? false,
    );
    this.protocolVersion = config.maxProtocolVersion ?? PROTOCOL_3_0;
  }

  private get sslmode(): SslMode {
    return this.cfg.sslmode ?? 'prefer';
  }

  private get method(): EncryptionMethod {
    return this.methods[this.methodIndex]!;
  }

  private step(state: ClientState, detail: string): void {
    this.state = state;
    this.onStep?.({ state, detail });
  }

  /** The first actions: open a socket for the first encryption method. */
  start(): ClientAction[] {
    if (this.state !== 'NEEDED') throw new Error('ClientHandshake.start() called twice');
    const pre = this.precheck();
    if (pre) return this.fail(pre);
    return this.openConnection();
  }

  /** Option combinations that cannot work, found before any byte is sent. */
  private precheck(): PgConnError | null {
    const mode = this.sslmode;
    const tls = this.cfg.tls ?? {};
    if ((mode === 'verify-ca' || mode === 'verify-full') && tls.rootCert === undefined) {
      return new TlsError(
        `root certificate file "${tls.rootCertPath ?? '~/.postgresql/root.crt'}" does not exist\n` +
          "Either provide the file, use the system's trusted roots with sslrootcert=system, or change sslmode to disable server certificate verification.",
      );
    }
    if (
      this.cfg.sslnegotiation === 'direct' &&
      !(mode === 'require' || mode === 'verify-ca' || mode === 'verify-full')
    ) {
      return new TlsError(
        `weak sslmode "${mode}" may not be used with sslnegotiation=direct (use "require", "verify-ca", or "verify-full")`,
      );
    }
    return null;
  }

  private openConnection(): ClientAction[] {
    this.resetConnectionState();
    this.connections++;
    const direct = this.method === 'ssl' && this.cfg.sslnegotiation === 'direct';
    this.direct = direct;
    this.step('STARTED', direct ? 'connecting (direct TLS)' : 'connecting');
    if (direct) this.state = 'SSL_HANDSHAKE';
    return [{ type: 'connect', tls: direct ? this.tlsOptions() : null }];
  }

  private resetConnectionState(): void {
    this.framer = new Framer();
    this.cancelSent = false;
    this.tls = null;
    this.scram = null;
    this.scramDone = false;
    this.finishedAuth = false;
    this.authMethod = 'trust';
    this.protocolVersion = this.cfg.maxProtocolVersion ?? PROTOCOL_3_0;
    this.negotiated = false;
    this.unrecognizedOptions = [];
    this.parameters = new Map();
    this.backendKey = null;
    this.notices = [];
  }

  tlsOptions(): TlsClientOptions {
    const t = this.cfg.tls ?? {};
    const host = this.cfg.host;
    const opts: TlsClientOptions = { alpnProtocols: [ALPN_POSTGRESQL] };
    if ((t.sni ?? true) && host && !isIpLiteral(host) && !host.startsWith('/')) opts.servername = host;
    if (t.rootCert === 'system') opts.useSystemCa = true;
    else if (t.rootCert) opts.ca = t.rootCert;
    if (t.cert !== undefined) opts.cert = t.cert;
    if (t.key !== undefined) opts.key = t.key;
    if (t.passphrase !== undefined) opts.passphrase = t.passphrase;
    if (t.crl) opts.crl = t.crl;
    opts.minVersion = t.minVersion ?? 'TLSv1.2';
    if (t.maxVersion) opts.maxVersion = t.maxVersion;
    return opts;
  }

  /** Feeds one event; returns the actions to perform, in order. */
  async handle(event: ClientEvent): Promise<ClientAction[]> {
    if (this.state === 'OK' || this.state === 'BAD') return [];
    try {
      switch (event.type) {
        case 'timeout':
          return this.fail(new ConnectionError('timeout expired'));
        case 'closed':
          return this.onClosed(event.error);
        case 'connected':
          if (this.state !== 'STARTED') throw new ProtocolError(`unexpected connect in state ${this.state}`);
          this.step('MADE', 'connection established');
          return this.onMade();
        case 'tlsFailed':
          if (this.state !== 'SSL_HANDSHAKE')
            throw new ProtocolError(`unexpected TLS failure in state ${this.state}`);
          // The transport cannot do what the TLS options ask (e.g. CRLs on a runtime without them):
          // keep the typed error and stop, rather than report a handshake failure and fall back.
          if (event.error instanceof UnsupportedError) return this.fail(event.error);
          return this.connectionFailed(this.sslError(event.error));
        case 'tlsEstablished':
          if (this.state !== 'SSL_HANDSHAKE')
            throw new ProtocolError(`unexpected TLS in state ${this.state}`);
          return this.onTlsEstablished(event.info);
        case 'data':
          this.framer.push(event.bytes);
          return await this.onData();
      }
    } catch (e) {
      if (e instanceof AuthError || e instanceof ProtocolError || e instanceof TlsError) return this.fail(e);
      if (e instanceof UnsupportedError || e instanceof ConnectionError) return this.fail(e);
      return this.fail(new ProtocolError(`internal error during negotiation: ${(e as Error).message}`));
    }
  }

  private onClosed(error: Error | undefined): ClientAction[] {
    // The server answers a CancelRequest by closing the connection; nothing else is expected.
    if (this.cancelSent) {
      this.step('OK', 'server closed the cancel connection');
      return [{ type: 'done', result: this.result('I') }];
    }
    if (this.state === 'SSL_HANDSHAKE') {
      return this.connectionFailed(
        error ? this.sslError(error) : new TlsError('SSL SYSCALL error: EOF detected'),
      );
    }
    // A TLS alert after the handshake, e.g. a TLS 1.3 server refusing the client certificate (revoked,
    // unknown CA) once it has read it: libpq's pgtls_read reports `SSL error: <reason>`, no fallback.
    if (this.tls && error && sslReason(error)) return this.fail(this.sslError(error));
    if (this.state === 'STARTED') {
      return this.fail(
        new ConnectionError(error ? error.message : 'connection closed before it was established'),
      );
    }
    return this.fail(new ConnectionError(SERVER_CLOSED));
  }

  /** libpq's `SSL error: <reason>`, plus its hint when the reason is about protocol versions. */
  private sslError(error: Error): TlsError {
    const reason = sslReason(error);
    let message = `SSL error: ${reason ?? error.message}`;
    if (reason && PROTOCOL_VERSION_REASONS.has(reason)) {
      const t = this.cfg.tls ?? {};
      message += `\nThis may indicate that the server does not support any SSL protocol version between ${t.minVersion ?? 'TLSv1.2'} and ${t.maxVersion ?? 'TLSv1.3'}.`;
    }
    return new TlsError(message);
  }

  private onMade(): ClientAction[] {
    if (this.method === 'ssl' && !this.tls) {
      encodeSSLRequest(this.writer);
      this.step('SSL_STARTUP', 'sent SSLRequest');
      return [{ type: 'write', bytes: this.writer.take() }];
    }
    return this.sendStartup();
  }

  private sendStartup(): ClientAction[] {
    const c = this.cfg;
    if (c.cancel) {
      encodeCancelRequest(this.writer, c.cancel.processId, c.cancel.secretKey);
      this.cancelSent = true;
      this.step('AWAITING_RESPONSE', `sent CancelRequest for process ${c.cancel.processId}`);
      return [{ type: 'write', bytes: this.writer.take() }];
    }
    const params: Array<[string, string]> = [['user', c.user]];
    if (c.database) params.push(['database', c.database]);
    if (c.replication) params.push(['replication', c.replication]);
    if (c.options) params.push(['options', c.options]);
    const app = c.applicationName || c.fallbackApplicationName;
    if (app) params.push(['application_name', app]);
    if (c.clientEncoding) params.push(['client_encoding', c.clientEncoding]);
    for (const [k, v] of c.extraParameters ?? []) params.push([k, v]);
    encodeStartupMessage(this.writer, { version: this.protocolVersion, parameters: params });
    const v = this.protocolVersion;
    this.step('AWAITING_RESPONSE', `sent StartupMessage (protocol ${v >>> 16}.${v & 0xffff})`);
    return [{ type: 'write', bytes: this.writer.take() }];
  }

  private onTlsEstablished(info: TlsInfo): ClientAction[] {
    this.tls = info;
    const alpn = info.alpnProtocol ?? null;
    if (this.direct && !alpn) {
      return this.connectionFailed(
        new TlsError('direct SSL connection was established without ALPN protocol negotiation extension'),
      );
    }
    if (alpn && alpn !== ALPN_POSTGRESQL) {
      return this.connectionFailed(
        new TlsError('SSL connection was established with unexpected ALPN protocol'),
      );
    }
    const t = this.cfg.tls ?? {};
    // Whenever a root certificate is configured the chain is verified, in any sslmode (libpq sets
    // SSL_VERIFY_PEER as soon as a root file was loaded): require then behaves like verify-ca.
    if (t.rootCert !== undefined && !info.authorized) {
      const why = info.authorizationError ? ` (${info.authorizationError})` : '';
      return this.connectionFailed(new TlsError(`SSL error: certificate verify failed${why}`));
    }
    if (this.sslmode === 'verify-full') {
      if (!info.peerCertificate) {
        return this.fail(
          new UnsupportedError(
            'certificate could not be obtained: the transport does not expose the peer certificate',
          ),
        );
      }
      try {
        verifyHostName(info.peerCertificate, this.cfg.host);
      } catch (e) {
        return this.connectionFailed(e as PgConnError);
      }
    }
    const detail = [info.protocol, info.cipher, alpn ? `ALPN ${alpn}` : 'no ALPN'].filter(Boolean).join(', ');
    this.step('MADE', `TLS established (${detail})`);
    return this.sendStartup();
  }

  private async onData(): Promise<ClientAction[]> {
    if (this.cancelSent) {
      this.framer.rest(); // a server says nothing after CancelRequest; libpq discards anything
      return [];
    }
    const out: ClientAction[] = [];
    for (;;) {
      const pending = this.pump(out);
      if (pending === null) return out;
      for (const a of await pending) out.push(a);
    }
  }

  /**
   * Handles what is buffered, synchronously, until it runs out or a message needs asynchronous work
   * (the SCRAM steps: WebCrypto); returns that message's promise, or null. Only SCRAM awaits: a
   * trust or password handshake runs no promise per message, and this loop stays a plain function
   * (V8 optimizes the handshake's hottest loop on a background thread while the first connections
   * run: an async loop that inlined the message handlers took several milliseconds to compile).
   */
  private pump(out: ClientAction[]): Promise<ClientAction[]> | null {
    while (this.state !== 'OK' && this.state !== 'BAD') {
      if (this.state === 'SSL_STARTUP') {
        const reply = this.framer.readByte();
        if (reply === -1) break;
        for (const a of this.onSslReply(reply)) out.push(a);
        continue;
      }
      if (this.state !== 'AWAITING_RESPONSE' && this.state !== 'AUTH_OK') {
        if (this.framer.buffered === 0) break;
        // Bytes while connecting or during the TLS handshake belong to nobody: the transport owns
        // the socket then. Treat as a violation rather than guess.
        throw new ProtocolError(`unexpected data from server in state ${this.state}`);
      }
      this.checkHeader();
      const frame = this.framer.next();
      if (frame === null) break;
      const actions = this.onMessage(frame);
      if (!Array.isArray(actions)) return actions;
      for (const a of actions) out.push(a);
    }
    return null;
  }

  private onSslReply(reply: number): ClientAction[] {
    switch (reply) {
      case 0x53: // 'S'
        // CVE-2021-23222: anything buffered after 'S' was sent in plaintext by a man in the middle.
        if (this.framer.buffered > 0) {
          return this.fail(new ProtocolError('received unencrypted data after SSL response'));
        }
        this.step('SSL_HANDSHAKE', "server accepted SSL ('S'), starting TLS");
        return [{ type: 'startTls', options: this.tlsOptions() }];
      case 0x4e: // 'N'
        this.step('SSL_STARTUP', "server refused SSL ('N')");
        return this.encryptionNegotiationFailed('server does not support SSL, but SSL was required');
      case 0x45: // 'E': CVE-2024-10977, the text is not read and never shown; no fallback.
        return this.fail(new ProtocolError('server sent an error response during SSL exchange'));
      default:
        return this.fail(
          new ProtocolError(`received invalid response to SSL negotiation: ${typeChar(reply)}`),
        );
    }
  }

  /** 'N': next method on the same socket, or a reconnect for direct TLS. */
  private encryptionNegotiationFailed(message: string): ClientAction[] {
    if (this.methodIndex + 1 >= this.methods.length) return this.fail(new TlsError(message));
    this.methodIndex++;
    if (this.method === 'ssl' && this.cfg.sslnegotiation === 'direct') {
      return [{ type: 'close' }, ...this.openConnection()];
    }
    this.step('MADE', `continuing with ${this.method} on the same connection`);
    return this.onMade();
  }

  /** CONNECTION_FAILED(): reconnect with the next method, or fail when none is left. */
  private connectionFailed(error: PgConnError): ClientAction[] {
    if (this.methodIndex + 1 >= this.methods.length) return this.fail(error);
    this.failures.push(error);
    this.methodIndex++;
    this.step('NEEDED', `${error.message}; reconnecting with ${this.method}`);
    return [{ type: 'close' }, ...this.openConnection()];
  }

  private fail(error: PgConnError): ClientAction[] {
    this.step('BAD', error.message);
    return [{ type: 'fail', error }];
  }

  /**
   * libpq's checks on the next message's type byte and length word, made as soon as they arrive and
   * before waiting for the body: a hostile (or non-PostgreSQL) peer cannot make us wait for, or
   * buffer, megabytes while we are not even authenticated.
   */
  private checkHeader(): void {
    const type = this.framer.peekByte();
    if (type === -1) return;
    const authenticating = this.state === 'AWAITING_RESPONSE';
    if (authenticating && !STARTUP_TYPES.has(type)) {
      throw new ProtocolError(`expected authentication request from server, but received ${typeChar(type)}`);
    }
    const len = this.framer.peekLength();
    if (len === null) return;
    if (authenticating) {
      if (type === BackendType.Authentication && (len < 8 || len > 2000)) {
        throw new ProtocolError('received invalid authentication request');
      }
      if (type === BackendType.NegotiateProtocolVersion && (len < 8 || len > 2000)) {
        throw new ProtocolError('received invalid protocol negotiation message');
      }
      if (type === BackendType.ErrorResponse && len > 30000) {
        throw new ProtocolError('received invalid error message from server');
      }
    } else if (len > 30000 && !LONG_TYPES.has(type)) {
      // pqParseInput3's handleSyncLoss: only a few message types may be long.
      throw new ProtocolError(
        `lost synchronization with server: got message type "${typeChar(type)}", length ${len}`,
      );
    }
  }

  private onMessage(frame: Frame): ClientAction[] | Promise<ClientAction[]> {
    const msg = decodeBackend(frame);
    if (this.state === 'AWAITING_RESPONSE') return this.onAuthMessage(msg, frame.type);
    return this.onAuthOkMessage(msg);
  }

  private onAuthMessage(msg: BackendMessage, type: number): ClientAction[] | Promise<ClientAction[]> {
    switch (msg.type) {
      case 'ErrorResponse': {
        const err = new ServerError(msg.fields);
        // 57P03 (cannot_connect_now) skips to the next host: the caller sees the code.
        if (msg.fields.code === '57P03') return this.fail(err);
        return this.connectionFailed(err);
      }
      case 'NoticeResponse':
        this.notices.push(msg.fields);
        return [];
      case 'NegotiateProtocolVersion':
        this.onNegotiateProtocolVersion(msg.version, msg.unrecognizedOptions);
        return [];
      case 'AuthenticationOk':
      case 'AuthenticationKerberosV5':
      case 'AuthenticationCleartextPassword':
      case 'AuthenticationMD5Password':
      case 'AuthenticationGSS':
      case 'AuthenticationGSSContinue':
      case 'AuthenticationSSPI':
      case 'AuthenticationSASL':
      case 'AuthenticationSASLContinue':
      case 'AuthenticationSASLFinal':
        return this.onAuthRequest(msg);
      default:
        throw new ProtocolError(
          `expected authentication request from server, but received ${typeChar(type)}`,
        );
    }
  }

  private onNegotiateProtocolVersion(version: number, options: string[]): void {
    const fail = (why: string): never => {
      throw new ProtocolError(`received invalid protocol negotiation message: ${why}`);
    };
    if (this.negotiated) throw new ProtocolError('received duplicate protocol negotiation message');
    this.negotiated = true;
    const requested = this.protocolVersion;
    if (version > requested) fail('server requested downgrade to a higher-numbered version');
    if (version < PROTOCOL_3_0) fail('server requested downgrade to pre-3.0 protocol version');
    if (version === 0x0003_0001) fail('server requested downgrade to non-existent 3.1 protocol version');
    if (version === requested && options.length === 0) fail('server negotiated but asks for no changes');
    for (const o of options) {
      if (!o.startsWith('_pq_.'))
        fail(`server reported an unsupported parameter name without a _pq_. prefix ("${o}")`);
      // We never request _pq_ options, so the server cannot report one as unsupported.
      fail(`server reported an unsupported parameter that was not requested ("${o}")`);
    }
    const min = this.cfg.minProtocolVersion ?? PROTOCOL_3_0;
    if (version < min) {
      throw new ProtocolError(
        `server only supports protocol version ${version >>> 16}.${version & 0xffff}, but "min_protocol_version" was set to ${min >>> 16}.${min & 0xffff}`,
      );
    }
    this.protocolVersion = version;
    this.unrecognizedOptions = options;
    this.onStep?.({
      state: this.state,
      detail: `server negotiated protocol ${version >>> 16}.${version & 0xffff}`,
    });
  }

  /** check_expected_areq (require_auth, channel_binding), then pg_fe_sendauth. */
  private onAuthRequest(msg: BackendMessage): ClientAction[] | Promise<ClientAction[]> {
    const code = authCodeOf(msg);
    checkRequireAuth(this.requireAuth, code, this.finishedAuth);
    if (this.channelBinding === 'require') {
      if (code === AuthCode.Ok) {
        if (!this.scramDone || this.authMethod !== 'SCRAM-SHA-256-PLUS') {
          throw new AuthError(
            'channel binding required, but server authenticated client without channel binding',
          );
        }
      } else if (code !== AuthCode.SASL && code !== AuthCode.SASLContinue && code !== AuthCode.SASLFinal) {
        throw new AuthError("channel binding required but not supported by server's authentication request");
      }
    }
    switch (msg.type) {
      case 'AuthenticationOk':
        if (this.scram && !this.scramDone) {
          // A server that skips the SCRAM final message never proved it knows the password.
          throw new AuthError('server sent AuthenticationOk before the SASL exchange completed');
        }
        this.step('AUTH_OK', `authenticated (${this.authMethod})`);
        return [];
      case 'AuthenticationCleartextPassword':
        this.authMethod = 'password';
        return this.sendPassword(this.requirePassword());
      case 'AuthenticationMD5Password':
        this.authMethod = 'md5';
        return this.sendPassword(md5PasswordResponse(this.cfg.user, this.requirePassword(), msg.salt));
      case 'AuthenticationSASL':
        return this.startSasl(msg.mechanisms);
      case 'AuthenticationSASLContinue':
        if (!this.scram)
          throw new ProtocolError('AuthenticationSASLContinue received before AuthenticationSASL');
        return this.saslContinue(this.scram, msg.data);
      case 'AuthenticationSASLFinal':
        if (!this.scram)
          throw new ProtocolError('AuthenticationSASLFinal received before AuthenticationSASL');
        return this.saslFinal(this.scram, msg.data);
      case 'AuthenticationKerberosV5':
        throw new AuthError('Kerberos 5 authentication not supported');
      case 'AuthenticationGSS':
      case 'AuthenticationGSSContinue':
        throw new UnsupportedError('GSSAPI authentication is not supported by pgconn');
      case 'AuthenticationSSPI':
        throw new UnsupportedError('SSPI authentication is not supported by pgconn');
      default:
        throw new ProtocolError(`unexpected authentication message ${msg.type}`);
    }
  }

  private async saslContinue(scram: ScramClient, serverFirst: Uint8Array): Promise<ClientAction[]> {
    const final = await scram.handleServerFirst(serverFirst);
    encodeFrontend(this.writer, { type: 'SASLResponse', data: final });
    this.step('AWAITING_RESPONSE', 'sent SCRAM client-final-message');
    return [{ type: 'write', bytes: this.writer.take() }];
  }

  private async saslFinal(scram: ScramClient, serverFinal: Uint8Array): Promise<ClientAction[]> {
    await scram.handleServerFinal(serverFinal);
    this.scramDone = true;
    this.finishedAuth = true;
    this.onStep?.({ state: this.state, detail: 'verified SCRAM server signature' });
    return [];
  }

  private requirePassword(): string {
    const pw = this.cfg.password;
    if (pw === undefined || pw === '') throw new AuthError('fe_sendauth: no password supplied');
    return pw;
  }

  private sendPassword(password: string): ClientAction[] {
    encodeFrontend(this.writer, { type: 'PasswordMessage', password });
    this.finishedAuth = true;
    this.step('AWAITING_RESPONSE', `sent ${this.authMethod === 'md5' ? 'MD5 password hash' : 'password'}`);
    return [{ type: 'write', bytes: this.writer.take() }];
  }

  private async startSasl(mechanisms: string[]): Promise<ClientAction[]> {
    const ssl = this.tls !== null;
    // pg_SASL_init checks this first, before looking at the offered mechanisms.
    if (this.channelBinding === 'require' && !ssl)
      throw new AuthError('channel binding required, but SSL not in use');
    if (this.scram) throw new ProtocolError('duplicate SASL authentication request');
    const plusOffered = mechanisms.includes('SCRAM-SHA-256-PLUS');
    if (plusOffered && !ssl) {
      // A PLUS offer on a plaintext connection means someone stripped TLS in between.
      throw new AuthError('server offered SCRAM-SHA-256-PLUS authentication over a non-SSL connection');
    }
    let mechanism: 'SCRAM-SHA-256' | 'SCRAM-SHA-256-PLUS';
    let cbData: Uint8Array | undefined;
    if (ssl && plusOffered && this.channelBinding !== 'disable' && this.tls?.peerCertificate) {
      mechanism = 'SCRAM-SHA-256-PLUS';
      cbData = await tlsServerEndPointHash(this.tls.peerCertificate);
    } else if (mechanisms.includes('SCRAM-SHA-256')) {
      mechanism = 'SCRAM-SHA-256';
    } else {
      throw new AuthError("none of the server's SASL authentication mechanisms are supported");
    }
    checkSaslMechanism(this.requireAuth, mechanism);
    if (this.channelBinding === 'require' && mechanism !== 'SCRAM-SHA-256-PLUS') {
      if (plusOffered && !this.tls?.peerCertificate) {
        throw new UnsupportedError(
          'channel binding required, but the transport does not expose the server certificate',
        );
      }
      throw new AuthError(
        'channel binding is required, but server did not offer an authentication method that supports channel binding',
      );
    }
    this.scram = new ScramClient({
      password: this.requirePassword(),
      mechanism,
      // 'y' says "I could bind, but you offered no PLUS": only over TLS, and never when PLUS was
      // offered but we cannot bind (no peer certificate), which a server would take for a downgrade.
      clientSupportsBinding: ssl && this.channelBinding !== 'disable' && !plusOffered,
      ...(cbData ? { channelBinding: { type: 'tls-server-end-point' as const, data: cbData } } : {}),
      ...(this.cfg.scramMaxIterations !== undefined ? { maxIterations: this.cfg.scramMaxIterations } : {}),
      ...(this.cfg.scramKeyCache !== undefined ? { keyCache: this.cfg.scramKeyCache } : {}),
    });
    this.authMethod = mechanism;
    encodeFrontend(this.writer, {
      type: 'SASLInitialResponse',
      mechanism,
      data: this.scram.clientFirstMessage(),
    });
    this.step('AWAITING_RESPONSE', `sent SASLInitialResponse (${mechanism})`);
    return [{ type: 'write', bytes: this.writer.take() }];
  }

  private result(transactionStatus: 'I' | 'T' | 'E'): HandshakeResult {
    return {
      encryption: this.tls ? 'ssl' : 'plaintext',
      tls: this.tls,
      direct: this.direct,
      authMethod: this.authMethod,
      protocolVersion: this.protocolVersion,
      parameters: this.parameters,
      backendKey: this.backendKey,
      transactionStatus,
      notices: this.notices,
      unrecognizedOptions: this.unrecognizedOptions,
      leftover: this.framer.rest().slice(),
      connections: this.connections,
    };
  }

  private onAuthOkMessage(msg: BackendMessage): ClientAction[] {
    switch (msg.type) {
      case 'ParameterStatus':
        setParameter(this.parameters, msg.name, msg.value);
        return [];
      case 'BackendKeyData':
        if (this.protocolVersion < PROTOCOL_3_2 && msg.secretKey.length !== 4) {
          throw new ProtocolError(
            `received invalid BackendKeyData message: cancel key with length ${msg.secretKey.length} not allowed in protocol version 3.0 (must be 4 bytes)`,
          );
        }
        this.backendKey = { processId: msg.processId, secretKey: msg.secretKey.slice() };
        return [];
      case 'NoticeResponse':
        this.notices.push(msg.fields);
        return [];
      case 'ErrorResponse':
        return this.fail(new ServerError(msg.fields));
      case 'ReadyForQuery': {
        this.step('OK', `ready for query (status ${msg.status})`);
        return [{ type: 'done', result: this.result(msg.status) }];
      }
      default:
        throw new ProtocolError(`unexpected message from server during startup: ${msg.type}`);
    }
  }
}

function authCodeOf(msg: BackendMessage): number {
  switch (msg.type) {
    case 'AuthenticationOk':
      return AuthCode.Ok;
    case 'AuthenticationKerberosV5':
      return AuthCode.KerberosV5;
    case 'AuthenticationCleartextPassword':
      return AuthCode.CleartextPassword;
    case 'AuthenticationMD5Password':
      return AuthCode.MD5Password;
    case 'AuthenticationGSS':
      return AuthCode.GSS;
    case 'AuthenticationGSSContinue':
      return AuthCode.GSSContinue;
    case 'AuthenticationSSPI':
      return AuthCode.SSPI;
    case 'AuthenticationSASL':
      return AuthCode.SASL;
    case 'AuthenticationSASLContinue':
      return AuthCode.SASLContinue;
    case 'AuthenticationSASLFinal':
      return AuthCode.SASLFinal;
    default:
      return -1;
  }
}
