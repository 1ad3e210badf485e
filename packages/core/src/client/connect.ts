/**
 * libpq's keep_going loop over hosts and addresses (reference §3.3) plus CHECK_TARGET (§3.4): resolve
 * each host through the transport, negotiate with each address under a fresh connect_timeout, and
 * keep the first session whose type matches target_session_attrs.
 *
 * Moving on follows libpq: a refused connect or an expired timeout tries the next address; SQLSTATE
 * 57P03 or a session of the wrong type tries the next host; anything else (an authentication failure,
 * a TLS verification failure with no method left) ends the whole attempt.
 */
import { checkIterations } from '../auth/scram.ts';
import type { ScramKeyCache } from '../auth/scram-key-cache.ts';
import { type Connection, type NegotiateOptions, negotiate } from '../connection.ts';
import { ConnectionError, PgConnError, ServerError } from '../errors.ts';
import type { ResolvedOptions, TargetSessionAttrs } from '../options/resolve.ts';
import { passwordFileHint, toHandshakeConfig } from '../options/resolve.ts';
import type { Endpoint, Transport } from '../transport.ts';
import type { HandshakeStep } from './handshake.ts';
import { loadTlsMaterial } from './material.ts';

export interface ConnectStep extends HandshakeStep {
  /** The host slot as configured (name, address or socket directory). */
  host: string;
  /** The address (or socket path) of this attempt. */
  address: string;
  port: number;
}

export interface ConnectOptions {
  onStep?: (step: ConnectStep) => void;
  /**
   * Highest SCRAM iteration count accepted from a server (default SCRAM_DEFAULT_MAX_ITERATIONS,
   * 1,000,000). The count is the server's choice and costs the client that many HMACs before the
   * server has proved anything, so a hostile server could pin a CPU; libpq has no such cap.
   */
  scramMaxIterations?: number;
  /**
   * Where derived SCRAM keys are kept between connections (RFC 5802 §5.1): reconnecting with the same
   * password to a server that sends the same salt skips PBKDF2. Default: the process-wide
   * `defaultScramKeyCache`; null derives the keys on every connection and keeps none.
   */
  scramKeyCache?: ScramKeyCache | null;
}

const shuffle = <T>(items: T[], random: () => number): T[] => {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
};

/** Connects as libpq's PQconnectdb would with these resolved options. */
export async function connect(
  transport: Transport,
  options: ResolvedOptions,
  connectOptions: ConnectOptions = {},
  random: () => number = Math.random,
): Promise<Connection> {
  const maxIterations = connectOptions.scramMaxIterations;
  if (maxIterations !== undefined) checkIterations(maxIterations, 'scramMaxIterations');
  const tls = await loadTlsMaterial(transport, options);
  const messages: string[] = [];
  let last: PgConnError | null = null;
  const wanted = options.targetSessionAttrs;
  const passes = wanted === 'prefer-standby' ? [true, false] : [false];

  for (const preferStandbyFirstPass of passes) {
    for (let i = 0; i < options.hosts.length; i++) {
      const target = options.hosts[i]!;
      let endpoints: Endpoint[];
      if (target.isUnixSocket) endpoints = [{ path: target.socketPath! }];
      else if (target.hostaddr) endpoints = [{ host: target.hostaddr, port: target.port }];
      else {
        try {
          const addrs = await transport.lookup(target.host);
          endpoints = addrs.map((host) => ({ host, port: target.port }));
        } catch (e) {
          last = new ConnectionError(
            `could not translate host name "${target.host}" to address: ${(e as Error).message}`,
            'connect',
          );
          messages.push(last.message);
          // Traced like any other failed attempt (the address is the name that did not resolve).
          connectOptions.onStep?.({
            state: 'BAD',
            detail: last.message,
            host: target.host,
            address: target.host,
            port: target.port,
          });
          continue;
        }
      }
      if (options.loadBalanceHosts === 'random') shuffle(endpoints, random);
      const config = toHandshakeConfig(options, i, tls);
      if (maxIterations !== undefined) config.scramMaxIterations = maxIterations;
      if (connectOptions.scramKeyCache !== undefined) config.scramKeyCache = connectOptions.scramKeyCache;
      // libpq's emitHostIdentityInfo: with hostaddr the message names only the address, never `host`.
      const displayedHost = target.hostaddr || target.host;
      for (const endpoint of endpoints) {
        const address = 'path' in endpoint ? endpoint.path : endpoint.host;
        const negotiateOptions: NegotiateOptions = {
          connectTimeout: options.connectTimeout,
          hostName: displayedHost,
          socket: { keepAlive: options.keepalives, noDelay: true },
        };
        if (options.keepalivesIdle !== undefined)
          negotiateOptions.socket!.keepAliveInitialDelay = options.keepalivesIdle;
        const onStep = connectOptions.onStep;
        if (onStep)
          negotiateOptions.onStep = (s) => onStep({ ...s, host: target.host, address, port: target.port });
        let conn: Connection;
        try {
          conn = await negotiate(transport, endpoint, config, negotiateOptions);
        } catch (e) {
          const err = e instanceof PgConnError ? e : new ConnectionError(String(e));
          last = err;
          const hint =
            err instanceof ServerError && err.code === '28P01' ? passwordFileHint(options, i) : undefined;
          messages.push(hint ? `${err.message}\n${hint}` : err.message);
          if (err instanceof ConnectionError && err.phase !== 'session') continue; // next address
          if (err instanceof ServerError && err.code === '57P03') break; // next host
          throw withMessages(err, messages);
        }
        const prefix =
          'path' in endpoint
            ? `connection to server on socket "${endpoint.path}" failed: `
            : `connection to server at ${displayedHost && displayedHost !== endpoint.host ? `"${displayedHost}" (${endpoint.host})` : `"${endpoint.host}"`}, port ${endpoint.port} failed: `;
        let mismatch: string | null;
        try {
          mismatch = await checkTarget(conn, wanted, preferStandbyFirstPass);
        } catch (e) {
          // The connection broke during the check: libpq gives up (error_return); do not leak it.
          await conn.close().catch(() => {});
          const err = e instanceof PgConnError ? e : new ConnectionError(String(e));
          onStep?.({ state: 'BAD', detail: err.message, host: target.host, address, port: target.port });
          err.message = prefix + err.message;
          messages.push(err.message);
          throw withMessages(err, messages);
        }
        if (mismatch === null) return conn;
        await conn.close();
        last = new ConnectionError(prefix + mismatch);
        messages.push(last.message);
        onStep?.({ state: 'BAD', detail: mismatch, host: target.host, address, port: target.port });
        break; // next host
      }
    }
  }
  throw withMessages(last ?? new ConnectionError('no host to connect to'), messages);
}

function withMessages(err: PgConnError, messages: string[]): PgConnError {
  if (messages.length > 0) err.message = messages.join('\n');
  return err;
}

/**
 * CHECK_TARGET: null when the session fits, else libpq's reason. Uses the reported GUCs
 * (in_hot_standby, default_transaction_read_only, PG14+) and queries older servers.
 */
export async function checkTarget(
  conn: Connection,
  wanted: TargetSessionAttrs,
  preferStandbyFirstPass: boolean,
): Promise<string | null> {
  if (wanted === 'any' || (wanted === 'prefer-standby' && !preferStandbyFirstPass)) return null;
  const p = conn.parameters;
  // CHECK_WRITABLE / CHECK_STANDBY: a failed query is a reason to try the next host, like a mismatch.
  const ask = async (sql: string, label: string): Promise<string | null | undefined | Error> => {
    try {
      return (await conn.query(sql)).rows[0]?.[0];
    } catch (e) {
      if (e instanceof ServerError) return new Error(`${e.message}\n"${label}" failed`);
      throw e;
    }
  };
  if (wanted === 'read-write' || wanted === 'read-only') {
    let readOnly: boolean;
    const hot = p.get('in_hot_standby');
    const dtro = p.get('default_transaction_read_only');
    if (hot !== undefined && dtro !== undefined) readOnly = hot === 'on' || dtro === 'on';
    else {
      const v = await ask('SHOW transaction_read_only', 'SHOW transaction_read_only');
      if (v instanceof Error) return v.message;
      readOnly = v === 'on';
    }
    if (wanted === 'read-write' && readOnly) return 'session is read-only';
    if (wanted === 'read-only' && !readOnly) return 'session is not read-only';
    return null;
  }
  let standby: boolean;
  const hot = p.get('in_hot_standby');
  const version = Number.parseInt(p.get('server_version') ?? '0', 10);
  if (hot !== undefined) standby = hot === 'on';
  else if (version > 0 && version < 9) standby = false;
  else {
    const v = await ask('SELECT pg_catalog.pg_is_in_recovery()', 'SELECT pg_is_in_recovery()');
    if (v instanceof Error) return v.message;
    standby = v === 't';
  }
  if (wanted === 'primary' && standby) return 'server is in hot standby mode';
  if ((wanted === 'standby' || wanted === 'prefer-standby') && !standby)
    return 'server is not in hot standby mode';
  return null;
}
