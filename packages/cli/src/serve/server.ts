/**
 * The `pgconn serve` server: a listener from the runtime's own transport, core's acceptSession for the startup of each accepted
 * connection (SSLRequest/direct TLS, StartupMessage, authentication), then a Session per
 * authenticated connection. Cancel requests are matched against live sessions by process ID and
 * key (constant time). One log line per connection event; the password never appears in it.
 */
import { X509Certificate } from 'node:crypto';
import {
  type AcceptOptions,
  type AuthPlan,
  type AuthProvider,
  acceptSession,
  cleanAscii,
  constantTimeEqual,
  type Listener,
  md5Verifier,
  type ServerTransportSocket,
  scramVerifier,
} from '@pgconn/core';
import { currentTransport } from '../runtime.ts';
import { Session } from './session.ts';

export type AuthMethod = 'trust' | 'password' | 'md5' | 'scram-sha-256';

/**
 * `steps`: every negotiation step of every connection (what the CLI is for: seeing how a connection
 * is negotiated). `connections`: what PostgreSQL's log_connections and log_disconnections (and
 * PgBouncer's defaults) log: a session started, a session ended, a connection refused or failed.
 */
export type LogLevel = 'steps' | 'connections';

export interface ServerOptions {
  host: string;
  port: number;
  /** Null: TLS off (SSLRequest → 'N'). `required`: plaintext startups are refused. */
  tls: { required: boolean; certPem: string; keyPem: string } | null;
  directTls: boolean;
  auth: AuthMethod;
  user: string;
  password: string;
  /** Seconds the whole startup may take (authentication_timeout). */
  authTimeout: number;
  /** One line per event (without trailing newline). */
  log: (line: string) => void;
  /** Default `steps`. */
  logLevel?: LogLevel;
}

export interface RunningServer {
  host: string;
  port: number;
  /** Stops accepting, ends every session (FATAL 57P01) and every startup in progress. */
  close(): Promise<void>;
}

const encoder = new TextEncoder();

/** The auth provider for one configured role: anyone else fails exactly like a wrong password. */
async function authProvider(o: ServerOptions): Promise<AuthProvider> {
  const known = (user: string) => user === o.user;
  switch (o.auth) {
    case 'trust':
      return (r): AuthPlan =>
        known(r.user)
          ? { method: 'trust' }
          : { method: 'reject', message: `role "${r.user}" does not exist` };
    case 'password': {
      const expected = encoder.encode(o.password);
      return (r): AuthPlan => ({
        method: 'password',
        verify: (password) => constantTimeEqual(encoder.encode(password), expected) && known(r.user),
      });
    }
    case 'md5': {
      const stored = md5Verifier(o.user, o.password);
      return (r): AuthPlan => ({ method: 'md5', storedVerifier: known(r.user) ? stored : null });
    }
    case 'scram-sha-256': {
      const verifier = await scramVerifier(o.password);
      return (r): AuthPlan => ({ method: 'scram-sha-256', verifier: known(r.user) ? verifier : null });
    }
  }
}

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const auth = await authProvider(o);
  // SCRAM-SHA-256-PLUS binds to our leaf certificate (the first one of the file).
  const certificate = o.tls ? new Uint8Array(new X509Certificate(o.tls.certPem).raw) : null;
  const listener: Listener = await (await currentTransport()).listen({ host: o.host, port: o.port });
  const sessions = new Map<number, Session>();
  const starting = new Set<ServerTransportSocket>();
  const log = (line: string) => o.log(cleanAscii(line));
  const steps = (o.logLevel ?? 'steps') === 'steps';
  let closing = false;
  let connections = 0;

  const onCancel = (tag: string) => (processId: number, key: Uint8Array) => {
    const s = sessions.get(processId);
    if (s?.matchesKey(key)) {
      const applied = s.cancel();
      log(
        `${tag} cancel request for process ${processId}: ${applied ? 'canceling its statement' : 'it is idle'}`,
      );
    } else log(`${tag} cancel request for process ${processId}: no such session or wrong key, ignored`);
  };

  const handle = async (socket: ServerTransportSocket): Promise<void> => {
    const tag = `[${++connections}] ${socket.remoteAddress}:${socket.remotePort}`;
    starting.add(socket);
    const options: AcceptOptions = {
      tls: o.tls ? { cert: o.tls.certPem, key: o.tls.keyPem } : null,
      authenticationTimeout: o.authTimeout,
      onCancel: onCancel(tag),
      onClose: (reason, message) => log(`${tag} closed (${reason})${message ? `: ${message}` : ''}`),
    };
    // CLOSED is logged by onClose, with its reason.
    if (steps)
      options.onStep = (s) => (s.state === 'CLOSED' ? undefined : log(`${tag} ${s.state}: ${s.detail}`));
    const conn = await acceptSession(
      socket,
      {
        auth,
        tls: certificate ? { certificate } : null,
        directTls: o.directTls,
        requireTls: o.tls?.required ?? false,
      },
      options,
    ).catch((e: unknown) => {
      log(`${tag} startup failed: ${(e as Error).message}`);
      socket.destroy();
      return null;
    });
    starting.delete(socket);
    if (!conn) return;
    if (closing) {
      conn.destroy();
      return;
    }
    const s = conn.session;
    const session = new Session(conn, (line) => log(`${tag} ${line}`));
    sessions.set(session.processId, session);
    log(
      `${tag} session started: user=${s.user} database=${s.database} auth=${s.authMethod} ` +
        `${s.tls ? `${s.direct ? 'direct ' : ''}TLS ${s.tls.protocol ?? ''}` : 'no encryption'} pid=${session.processId}`,
    );
    try {
      await session.run();
    } finally {
      sessions.delete(session.processId);
    }
  };

  const accepting = (async () => {
    for (let s = await listener.accept(); s !== null; s = await listener.accept()) void handle(s);
  })();

  return {
    host: listener.host,
    port: listener.port,
    async close() {
      if (closing) return;
      closing = true;
      // Sessions are ended alongside, not after: a listener may wait for its connections to end.
      const stopped = listener.close();
      await accepting;
      for (const s of starting) s.destroy();
      await Promise.all([...sessions.values()].map((s) => s.terminate()));
      await stopped;
    },
  };
}
