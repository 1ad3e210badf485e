/**
 * The conformance suite: the client and server behaviours the Node tests cover, in compact form,
 * run against any Transport. It imports nothing but @pgconn/core and web-standard globals, so the
 * same file runs on Node (inside vitest), Bun and Deno (through run.ts).
 *
 * Each check passes, fails with a message, or is `unsupported` — only when the transport itself
 * throws the core's UnsupportedError for a capability its runtime lacks (the reason is its message).
 * Anything else (a wrong outcome, another error, a hang past the check's timeout) is a failure.
 */
import {
  type AuthPlan,
  acceptSession,
  type ClientConnectOptions,
  type Connection,
  type ConnectStep,
  connect,
  type Listener,
  resolveOptions,
  ScramKeyCache,
  type ScramKeys,
  type ServerConnection,
  scramVerifier,
  type Transport,
} from '@pgconn/core';
import type { ConformanceEnv, PgEndpoint } from './env.ts';

export type CheckStatus = 'pass' | 'fail' | 'unsupported';

export interface CheckResult {
  id: string;
  status: CheckStatus;
  detail: string;
  ms: number;
}

export interface ConformanceOptions {
  /** Called after each check (for progress output). */
  onResult?: (r: CheckResult) => void;
  /** Per-check timeout in ms (default 30 000). */
  timeoutMs?: number;
}

interface Ctx {
  t: Transport;
  env: ConformanceEnv;
}

interface Check {
  id: string;
  /** Returns the detail shown for a pass; throws for a failure. */
  run(ctx: Ctx): Promise<string>;
}

class CheckFailure extends Error {}

function ensure(cond: unknown, message: string): asserts cond {
  if (!cond) throw new CheckFailure(message);
}

const show = (v: unknown): string => JSON.stringify(v);

function ensureEqual<T>(actual: T, expected: T, what: string): void {
  if (show(actual) !== show(expected))
    throw new CheckFailure(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}

const isUnsupported = (e: unknown): boolean =>
  (e as { kind?: unknown })?.kind === 'unsupported' || (e as { name?: unknown })?.name === 'UnsupportedError';

/** The text after libpq's `connection to server at "…", port N failed: ` prefix (first attempt). */
const reason = (e: Error): string => e.message.replace(/^connection to server [^\n]*? failed: /, '');

const text = new TextDecoder();
const encode = (s: string) => new TextEncoder().encode(s);

async function readText(ctx: Ctx, path: string): Promise<string> {
  const b = await ctx.t.readFile(path);
  if (!b) throw new CheckFailure(`missing file ${path}`);
  return text.decode(b);
}

function pemToDer(pem: string): Uint8Array {
  const b64 = pem
    .replace(/-----BEGIN CERTIFICATE-----/, '')
    .replace(/-----END CERTIFICATE-----[\s\S]*$/, '')
    .replace(/\s+/g, '');
  const bin = atob(b64);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** The process's resident-set size in bytes, on any of the three runtimes (null where none is exposed). */
function residentBytes(): (() => number) | null {
  const g = globalThis as {
    process?: { memoryUsage?: { rss?: () => number } };
    Deno?: { memoryUsage?: () => { rss: number } };
  };
  const rss = g.process?.memoryUsage?.rss;
  if (typeof rss === 'function') return () => rss();
  const deno = g.Deno?.memoryUsage;
  if (typeof deno === 'function') return () => deno().rss;
  return null;
}

const sameBytes = (a: Uint8Array | undefined, b: Uint8Array): boolean =>
  !!a && a.length === b.length && a.every((x, i) => x === b[i]);

/* ------------------------------------------------------------------------------------------------ */
/* Connecting                                                                                        */
/* ------------------------------------------------------------------------------------------------ */

interface Attempt {
  conn?: Connection;
  error?: Error;
  /** TCP connections opened (STARTED steps). */
  connections: number;
}

/** Connects like libpq with these keywords, on top of defaults that read no user files. */
async function attempt(
  ctx: Ctx,
  params: Record<string, string | number>,
  options: Omit<ClientConnectOptions, 'onStep'> = {},
): Promise<Attempt> {
  const all: Record<string, string> = {
    dbname: 'postgres',
    connect_timeout: '10',
    sslrootcert: '/nonexistent/root.crt',
    sslcert: '/nonexistent/client.crt',
    sslkey: '/nonexistent/client.key',
    sslcrl: '/nonexistent/root.crl',
    sslcrldir: '/nonexistent/crldir',
    passfile: '/nonexistent/pgpass',
  };
  for (const [k, v] of Object.entries(params)) all[k] = String(v);
  let connections = 0;
  const onStep = (s: ConnectStep) => {
    if (s.state === 'STARTED') connections++;
  };
  try {
    const resolved = resolveOptions({ params: all, env: {} });
    const conn = await connect(ctx.t, resolved, { ...options, onStep });
    return { conn, connections };
  } catch (error) {
    return { error: error as Error, connections };
  }
}

const at = (pg: PgEndpoint) => ({ host: 'localhost', hostaddr: pg.host, port: pg.port });

/** Runs `fn` on an open connection and closes it. */
async function session<T>(a: Attempt, fn: (c: Connection) => Promise<T>): Promise<T> {
  if (a.error) {
    if (isUnsupported(a.error)) throw a.error;
    throw new CheckFailure(`connection failed: ${a.error.message}`);
  }
  try {
    return await fn(a.conn!);
  } finally {
    await a.conn!.close();
  }
}

/** pg_stat_ssl of this session, and who we are. */
async function probe(c: Connection): Promise<{ ssl: boolean; user: string }> {
  const r = await c.query('select ssl, current_user from pg_stat_ssl where pid = pg_backend_pid()');
  const ssl = r.rows[0]?.[0] === 't';
  ensureEqual(c.tls !== null, ssl, 'transport TLS vs pg_stat_ssl.ssl');
  return { ssl, user: r.rows[0]?.[1] ?? '' };
}

/** Expects a failure whose libpq text (after the address prefix) satisfies `match`. */
function expectError(a: Attempt, kind: string, match: string | RegExp): string {
  if (a.conn) {
    void a.conn.close();
    throw new CheckFailure(`connected, expected ${kind} error: ${match}`);
  }
  const e = a.error!;
  if (isUnsupported(e)) throw e;
  const got = reason(e);
  ensure(
    (e as { kind?: string }).kind === kind,
    `expected a ${kind} error, got ${(e as { kind?: string }).kind ?? e.name}: ${e.message}`,
  );
  const ok = typeof match === 'string' ? got === match : match.test(got);
  ensure(ok, `expected ${match}, got: ${got}`);
  return got.split('\n')[0]!;
}

/* ------------------------------------------------------------------------------------------------ */
/* sslmode matrix (rows from packages/transport-node/test/sslmode-matrix.test.ts)                    */
/* ------------------------------------------------------------------------------------------------ */

type Outcome = 'plain' | 'ssl' | 'fail';
type Row = [
  user: string,
  sslmode: string,
  negotiation: 'postgres' | 'direct',
  outcome: Outcome,
  connections: number,
];

const SSL_ON: Row[] = [
  ['testuser', 'disable', 'postgres', 'plain', 1],
  ['testuser', 'allow', 'postgres', 'plain', 1],
  ['testuser', 'prefer', 'postgres', 'ssl', 1],
  ['testuser', 'require', 'postgres', 'ssl', 1],
  ['testuser', 'verify-full', 'postgres', 'ssl', 1],
  ['ssluser', 'disable', 'postgres', 'fail', 1],
  ['ssluser', 'allow', 'postgres', 'ssl', 2],
  ['ssluser', 'prefer', 'postgres', 'ssl', 1],
  ['ssluser', 'require', 'postgres', 'ssl', 1],
  ['ssluser', 'verify-full', 'postgres', 'ssl', 1],
  ['nossluser', 'disable', 'postgres', 'plain', 1],
  ['nossluser', 'allow', 'postgres', 'plain', 1],
  ['nossluser', 'prefer', 'postgres', 'plain', 2],
  ['nossluser', 'require', 'postgres', 'fail', 1],
  ['nossluser', 'verify-full', 'postgres', 'fail', 1],
];

const DIRECT: Row[] = [
  ['testuser', 'disable', 'direct', 'fail', 0],
  ['testuser', 'allow', 'direct', 'fail', 0],
  ['testuser', 'prefer', 'direct', 'fail', 0],
  ['testuser', 'require', 'direct', 'ssl', 1],
  ['testuser', 'verify-full', 'direct', 'ssl', 1],
  ['ssluser', 'require', 'direct', 'ssl', 1],
  ['nossluser', 'require', 'direct', 'fail', 1],
];

async function matrixRows(ctx: Ctx, pg: PgEndpoint, rows: readonly Row[]): Promise<string> {
  const wrong: string[] = [];
  const got: string[] = [];
  for (const [user, sslmode, sslnegotiation, outcome, connections] of rows) {
    const params: Record<string, string | number> = { ...at(pg), user, sslmode, sslnegotiation };
    if (sslmode.startsWith('verify')) params.sslrootcert = ctx.env.certs.rootServerCa;
    const a = await attempt(ctx, params);
    if (a.error && isUnsupported(a.error)) throw a.error;
    let o: Outcome = 'fail';
    if (a.conn) o = (await session(a, probe)).ssl ? 'ssl' : 'plain';
    const label = `${sslnegotiation === 'direct' ? `${user} direct ` : ''}${sslmode}→${o}/${a.connections}`;
    got.push(label);
    if (o !== outcome || a.connections !== connections) {
      wrong.push(
        `${user} sslmode=${sslmode} sslnegotiation=${sslnegotiation}: expected ${outcome}/${connections}, got ${o}/${a.connections}${a.error ? ` (${a.error.message.split('\n')[0]})` : ''}`,
      );
    }
  }
  if (wrong.length) throw new CheckFailure(wrong.join('; '));
  return got.join(' ');
}

const matrixChecks = (): Check[] => {
  const out: Check[] = [];
  for (const version of [15, 18] as const) {
    for (const user of ['testuser', 'ssluser', 'nossluser']) {
      out.push({
        id: `sslmode matrix PG${version} ${user}`,
        run: (ctx) =>
          matrixRows(
            ctx,
            version === 15 ? ctx.env.pg15 : ctx.env.pg18,
            SSL_ON.filter((r) => r[0] === user),
          ),
      });
    }
  }
  out.push({ id: 'direct TLS matrix PG18', run: (ctx) => matrixRows(ctx, ctx.env.pg18, DIRECT) });
  return out;
};

/* ------------------------------------------------------------------------------------------------ */
/* The checks                                                                                        */
/* ------------------------------------------------------------------------------------------------ */

const verifyFull = (ctx: Ctx) => ({ sslmode: 'verify-full', sslrootcert: ctx.env.certs.rootServerCa });

const basicChecks: Check[] = [
  {
    id: 'TCP connect, query, close',
    run: async (ctx) =>
      session(
        await attempt(ctx, { ...at(ctx.env.pg15), user: 'testuser', sslmode: 'disable' }),
        async (c) => {
          const r = await c.query("select 1 as one, null::text as nothing, 'héllo €' as greeting");
          ensureEqual(r.rows, [['1', null, 'héllo €']], 'rows');
          ensureEqual(r.command, 'SELECT 1', 'command tag');
          return `server ${c.parameters.get('server_version')}`;
        },
      ),
  },
  {
    id: 'Unix-domain socket',
    run: async (ctx) =>
      session(
        await attempt(ctx, {
          host: ctx.env.pg15.socketDir,
          port: ctx.env.pg15.port,
          user: 'postgres',
          sslmode: 'prefer',
        }),
        async (c) => {
          ensure(c.tls === null, 'TLS over a Unix socket');
          ensureEqual((await c.query('select 1')).rows, [['1']], 'rows');
          return 'path' in c.endpoint ? c.endpoint.path : '?';
        },
      ),
  },
  {
    id: 'connection refused',
    run: async (ctx) => {
      const a = await attempt(ctx, { host: '127.0.0.1', port: 1, user: 'x', sslmode: 'disable' });
      return expectError(a, 'connection', /^Connection refused\n/);
    },
  },
  {
    id: 'TLS info: PG18 STARTTLS (protocol, cipher, ALPN, peer certificate DER)',
    run: async (ctx) => {
      const der = pemToDer(await readText(ctx, ctx.env.certs.serverCert));
      return session(
        await attempt(ctx, { ...at(ctx.env.pg18), user: 'testuser', ...verifyFull(ctx) }),
        async (c) => {
          const t = c.tls;
          ensure(t, 'no TLS');
          ensureEqual(t.protocol, 'TLSv1.3', 'protocol');
          ensure(t.cipher, 'no cipher reported');
          ensureEqual(t.alpnProtocol, 'postgresql', 'ALPN');
          ensure(t.authorized, `not authorized: ${t.authorizationError}`);
          ensure(
            sameBytes(t.peerCertificate, der),
            'peer certificate DER differs from the server certificate',
          );
          return `${t.protocol} ${t.cipher} ALPN ${t.alpnProtocol}, DER ${der.length} bytes`;
        },
      );
    },
  },
  {
    id: 'TLS info: PG15 STARTTLS (no ALPN selected)',
    run: async (ctx) =>
      session(
        await attempt(ctx, { ...at(ctx.env.pg15), user: 'testuser', sslmode: 'require' }),
        async (c) => {
          ensure(c.tls, 'no TLS');
          ensureEqual(c.tls.alpnProtocol ?? null, null, 'ALPN');
          ensure((c.tls.peerCertificate?.length ?? 0) > 100, 'no peer certificate');
          return `${c.tls.protocol}, no ALPN`;
        },
      ),
  },
];

const HOST_MISMATCH =
  'server certificate for "localhost" (and 2 other names) does not match host name "wronghost.test"';

const verifyChecks: Check[] = [
  {
    id: 'verify-full: host name matches (DNS SAN, IP SAN)',
    run: async (ctx) => {
      for (const host of ['localhost', '127.0.0.1']) {
        const a = await attempt(ctx, {
          host,
          hostaddr: '127.0.0.1',
          port: ctx.env.pg15.port,
          user: 'testuser',
          ...verifyFull(ctx),
        });
        await session(a, async (c) => ensure((await probe(c)).ssl, `no TLS for host=${host}`));
      }
      return 'host=localhost, host=127.0.0.1';
    },
  },
  {
    id: 'verify-full: host name mismatch (libpq message)',
    run: async (ctx) =>
      expectError(
        await attempt(ctx, {
          host: 'wronghost.test',
          hostaddr: '127.0.0.1',
          port: ctx.env.pg15.port,
          user: 'testuser',
          ...verifyFull(ctx),
        }),
        'tls',
        HOST_MISMATCH,
      ),
  },
  {
    id: 'verify-ca: host name not checked',
    run: async (ctx) =>
      session(
        await attempt(ctx, {
          host: 'wronghost.test',
          hostaddr: '127.0.0.1',
          port: ctx.env.pg15.port,
          user: 'testuser',
          sslmode: 'verify-ca',
          sslrootcert: ctx.env.certs.rootServerCa,
        }),
        async (c) => {
          ensure((await probe(c)).ssl, 'no TLS');
          return 'connected to host=wronghost.test';
        },
      ),
  },
  {
    id: 'verify-ca: unknown CA fails',
    run: async (ctx) =>
      expectError(
        await attempt(ctx, {
          ...at(ctx.env.pg15),
          user: 'testuser',
          sslmode: 'verify-ca',
          sslrootcert: ctx.env.certs.wrongCa,
        }),
        'tls',
        /^SSL error: certificate verify failed/,
      ),
  },
  {
    id: 'verify-full: missing root certificate file',
    run: async (ctx) =>
      expectError(
        await attempt(ctx, { ...at(ctx.env.pg15), user: 'testuser', sslmode: 'verify-full' }),
        'tls',
        /^root certificate file "\/nonexistent\/root.crt" does not exist\n/,
      ),
  },
];

const clientCertChecks: Check[] = [
  {
    id: 'client certificate: cert auth',
    run: async (ctx) => {
      const { clientCert, clientKey } = ctx.env.certs;
      const a = await attempt(ctx, {
        ...at(ctx.env.pg15),
        user: 'ssltestuser',
        ...verifyFull(ctx),
        sslcert: clientCert,
        sslkey: clientKey,
      });
      return session(a, async (c) => {
        ensureEqual(c.handshake.authMethod, 'trust', 'auth method (cert auth answers AuthenticationOk)');
        ensureEqual((await probe(c)).user, 'ssltestuser', 'current_user');
        return 'ssltestuser via CN';
      });
    },
  },
  {
    id: 'client certificate: encrypted key + sslpassword',
    run: async (ctx) => {
      const { clientCert, clientKeyEncrypted, clientKeyPassphrase } = ctx.env.certs;
      const a = await attempt(ctx, {
        ...at(ctx.env.pg18),
        user: 'ssltestuser',
        ...verifyFull(ctx),
        sslcert: clientCert,
        sslkey: clientKeyEncrypted,
        sslpassword: clientKeyPassphrase,
      });
      return session(a, async (c) => `current_user ${(await probe(c)).user}`);
    },
  },
  {
    id: 'client certificate: wrong sslpassword',
    run: async (ctx) => {
      const { clientCert, clientKeyEncrypted } = ctx.env.certs;
      const a = await attempt(ctx, {
        ...at(ctx.env.pg15),
        user: 'ssltestuser',
        ...verifyFull(ctx),
        sslcert: clientCert,
        sslkey: clientKeyEncrypted,
        sslpassword: 'wrong',
      });
      return expectError(a, 'tls', 'SSL error: bad decrypt');
    },
  },
  {
    id: 'client certificate: key of another certificate',
    run: async (ctx) => {
      const { clientCert, clientRevokedKey } = ctx.env.certs;
      const a = await attempt(ctx, {
        ...at(ctx.env.pg15),
        user: 'ssltestuser',
        ...verifyFull(ctx),
        sslcert: clientCert,
        sslkey: clientRevokedKey,
      });
      // libpq checks the pair before the handshake (SSL_CTX_check_private_key).
      return expectError(a, 'tls', 'SSL error: key values mismatch');
    },
  },
  {
    id: 'client certificate: none sent to a cert-auth user',
    run: async (ctx) =>
      expectError(
        await attempt(ctx, { ...at(ctx.env.pg15), user: 'ssltestuser', ...verifyFull(ctx) }),
        'server',
        'FATAL:  connection requires a valid client certificate',
      ),
  },
  {
    id: 'client certificate: revoked (TLS 1.3 and 1.2)',
    run: async (ctx) => {
      const { clientRevokedCert, clientRevokedKey } = ctx.env.certs;
      for (const v of ['TLSv1.3', 'TLSv1.2']) {
        const a = await attempt(ctx, {
          ...at(ctx.env.pg15),
          user: 'ssltestuser',
          ...verifyFull(ctx),
          sslcert: clientRevokedCert,
          sslkey: clientRevokedKey,
          ssl_max_protocol_version: v,
        });
        expectError(a, 'tls', 'SSL error: sslv3 alert certificate revoked');
      }
      return 'SSL error: sslv3 alert certificate revoked';
    },
  },
];

/** Counts lookups that found their keys. */
class CountingKeyCache extends ScramKeyCache {
  hits = 0;
  override get(password: Uint8Array, salt: Uint8Array, iterations: number): ScramKeys | undefined {
    const keys = super.get(password, salt, iterations);
    if (keys) this.hits++;
    return keys;
  }
}

const scramChecks: Check[] = [
  {
    id: 'SCRAM-SHA-256 over plaintext',
    run: async (ctx) =>
      session(
        await attempt(ctx, {
          ...at(ctx.env.pg18),
          user: 'scramuser',
          password: ctx.env.password,
          sslmode: 'disable',
        }),
        async (c) => {
          ensureEqual(c.handshake.authMethod, 'SCRAM-SHA-256', 'auth method');
          return c.handshake.authMethod;
        },
      ),
  },
  ...([15, 18] as const).map(
    (v): Check => ({
      id: `SCRAM-SHA-256-PLUS over TLS, channel_binding=require (PG${v})`,
      run: async (ctx) =>
        session(
          await attempt(ctx, {
            ...at(v === 15 ? ctx.env.pg15 : ctx.env.pg18),
            user: 'scramuser',
            password: ctx.env.password,
            ...verifyFull(ctx),
            channel_binding: 'require',
          }),
          async (c) => {
            ensureEqual(c.handshake.authMethod, 'SCRAM-SHA-256-PLUS', 'auth method');
            return c.handshake.authMethod;
          },
        ),
    }),
  ),
  {
    id: 'SCRAM-SHA-256-PLUS over direct TLS (PG18)',
    run: async (ctx) =>
      session(
        await attempt(ctx, {
          ...at(ctx.env.pg18),
          user: 'scramuser',
          password: ctx.env.password,
          ...verifyFull(ctx),
          sslnegotiation: 'direct',
        }),
        async (c) => {
          ensure(c.handshake.direct, 'not direct');
          ensureEqual(c.handshake.authMethod, 'SCRAM-SHA-256-PLUS', 'auth method');
          ensureEqual(c.tls?.alpnProtocol, 'postgresql', 'ALPN');
          return `${c.handshake.authMethod}, ALPN ${c.tls?.alpnProtocol}`;
        },
      ),
  },
  {
    id: 'SCRAM key cache: a reconnect skips PBKDF2 (RFC 5802 §5.1)',
    run: async (ctx) => {
      const cache = new CountingKeyCache();
      const params = {
        ...at(ctx.env.pg18),
        user: 'scramuser',
        password: ctx.env.password,
        ...verifyFull(ctx),
      };
      for (let i = 0; i < 2; i++) {
        await session(await attempt(ctx, params, { scramKeyCache: cache }), async () => {});
      }
      // The first connection derived and stored the keys, the second found them (same role, same salt).
      ensureEqual(`${cache.size} entry, ${cache.hits} hit`, '1 entry, 1 hit', 'cache');
      const wrong = await attempt(ctx, { ...params, password: 'wrong' }, { scramKeyCache: cache });
      expectError(wrong, 'server', 'FATAL:  password authentication failed for user "scramuser"');
      ensureEqual(
        `${cache.size} entries, ${cache.hits} hit`,
        '2 entries, 1 hit',
        'cache after a wrong password',
      );
      return '2nd connection: keys from the cache; a wrong password is its own entry';
    },
  },
  {
    id: 'channel_binding=require over plaintext fails',
    run: async (ctx) =>
      expectError(
        await attempt(ctx, {
          ...at(ctx.env.pg18),
          user: 'scramuser',
          password: ctx.env.password,
          sslmode: 'disable',
          channel_binding: 'require',
        }),
        'auth',
        'channel binding required, but SSL not in use',
      ),
  },
  {
    id: 'SCRAM wrong password (28P01)',
    run: async (ctx) => {
      const a = await attempt(ctx, {
        ...at(ctx.env.pg15),
        user: 'scramuser',
        password: 'wrong',
        sslmode: 'require',
      });
      const got = expectError(a, 'server', 'FATAL:  password authentication failed for user "scramuser"');
      ensureEqual((a.error as { code?: string }).code, '28P01', 'SQLSTATE');
      return got;
    },
  },
];

const fakeChecks: Check[] = [
  {
    id: 'close(): Terminate sent, socket released without waiting for the server (PQfinish)',
    run: async (ctx) => {
      // The fake keeps its side open for 3 s after our FIN: a close() waiting for the server's FIN
      // (or a grace timer) would take that long.
      const { host, port } = ctx.env.fake.linger;
      const a = await attempt(ctx, { host, port, user: 'alice', sslmode: 'disable', gssencmode: 'disable' });
      if (!a.conn) throw new CheckFailure(`did not connect: ${a.error?.message ?? 'no connection'}`);
      const t0 = performance.now();
      await a.conn.close();
      const ms = performance.now() - t0;
      ensure(ms < 1000, `close() took ${ms.toFixed(0)} ms: it waited for the server`);
      return `close() in ${ms.toFixed(1)} ms`;
    },
  },
  {
    id: "CVE-2021-23222: 'S' followed by plaintext",
    run: async (ctx) => {
      const { host, port } = ctx.env.fake.sslJunk;
      const a = await attempt(ctx, {
        host,
        port,
        user: 'alice',
        password: 'sup3rs3cret',
        sslmode: 'require',
        connect_timeout: 5,
      });
      const got = expectError(a, 'protocol', /received unencrypted data after SSL response/);
      ensureEqual(a.connections, 1, 'connections');
      return got;
    },
  },
  {
    id: "CVE-2024-10977: 'E' reply to SSLRequest",
    run: async (ctx) => {
      const { host, port } = ctx.env.fake.sslError;
      const a = await attempt(ctx, {
        host,
        port,
        user: 'alice',
        password: 'sup3rs3cret',
        sslmode: 'prefer',
        connect_timeout: 5,
      });
      const got = expectError(a, 'protocol', /server sent an error response during SSL exchange/);
      const m = a.error!.message;
      ensure(!/INJECTED|too many/.test(m) && !m.includes('\u001b'), `server text shown: ${m}`);
      ensureEqual(a.connections, 1, 'connections (no fallback)');
      return got;
    },
  },
  {
    id: 'direct TLS without ALPN fails',
    run: async (ctx) => {
      const { host, port } = ctx.env.fake.directNoAlpn;
      const a = await attempt(ctx, {
        host,
        port,
        user: 'alice',
        sslmode: 'require',
        sslnegotiation: 'direct',
        connect_timeout: 5,
      });
      return expectError(
        a,
        'tls',
        /direct SSL connection was established without ALPN protocol negotiation extension/,
      );
    },
  },
];

const timeoutChecks: Check[] = [
  {
    id: 'connect_timeout against a silent server',
    run: async (ctx) => {
      const { host, port } = ctx.env.fake.stall;
      const t0 = performance.now();
      const a = await attempt(ctx, { host, port, user: 'alice', sslmode: 'prefer', connect_timeout: 2 });
      const ms = performance.now() - t0;
      const got = expectError(a, 'connection', 'timeout expired');
      ensure(ms > 1500 && ms < 4000, `gave up after ${ms.toFixed(0)} ms, expected about 2000`);
      return `${got} after ${ms.toFixed(0)} ms`;
    },
  },
];

const sessionChecks: Check[] = [
  ...(
    [
      [15, {}],
      [18, { max_protocol_version: '3.2' }],
    ] as const
  ).map(
    ([v, extra]): Check => ({
      id: `cancel pg_sleep over TLS (PG${v}${v === 18 ? ', protocol 3.2' : ''})`,
      run: async (ctx) =>
        session(
          await attempt(ctx, {
            ...at(v === 15 ? ctx.env.pg15 : ctx.env.pg18),
            user: 'postgres',
            sslmode: 'require',
            ...extra,
          }),
          async (c) => {
            const running = c.query('select pg_sleep(30)');
            running.catch(() => {});
            await new Promise((r) => setTimeout(r, 200));
            const t0 = performance.now();
            await c.cancel();
            const err = await running.then(
              () => null,
              (e: unknown) => e as Error & { code?: string },
            );
            const ms = performance.now() - t0;
            ensure(err, 'the query was not cancelled');
            ensureEqual(err.code, '57014', 'SQLSTATE');
            ensure(ms < 2000, `cancel took ${ms.toFixed(0)} ms`);
            ensureEqual((await c.query('select 1')).rows, [['1']], 'session after cancel');
            return `57014 after ${ms.toFixed(0)} ms, key ${c.backendKey?.secretKey.length} bytes`;
          },
        ),
    }),
  ),
  {
    id: 'COPY TO STDOUT, 8 MB over TLS (content checked)',
    run: async (ctx) =>
      session(
        await attempt(ctx, { ...at(ctx.env.pg15), user: 'postgres', sslmode: 'require' }),
        async (c) => {
          let rows = 0;
          let bytes = 0;
          const t0 = performance.now();
          for await (const chunk of c.copyOut(
            'copy (select lpad(i::text, 1000, $$0$$) from generate_series(1, 8000) i) to stdout',
          )) {
            rows++;
            bytes += chunk.length;
            if (
              chunk.length !== 1001 ||
              chunk[1000] !== 0x0a ||
              Number(text.decode(chunk.subarray(0, 1000))) !== rows
            )
              throw new CheckFailure(`row ${rows} corrupted: ${text.decode(chunk.subarray(0, 40))}…`);
          }
          ensureEqual(rows, 8000, 'rows');
          return `${(bytes / 1e6).toFixed(1)} MB in ${(performance.now() - t0).toFixed(0)} ms`;
        },
      ),
  },
  {
    id: 'COPY TO STDOUT into a callback (copyOutTo): order, async backpressure, an error mid-COPY',
    run: async (ctx) =>
      session(
        await attempt(ctx, { ...at(ctx.env.pg18), user: 'postgres', sslmode: 'require' }),
        async (c) => {
          const text = new TextDecoder();
          let rows = 0;
          const tag = await c.copyOutTo(
            'copy (select lpad(i::text, 1000, $$0$$) from generate_series(1, 8000) i) to stdout',
            (chunk) => {
              rows++;
              if (chunk.length !== 1001 || Number(text.decode(chunk.subarray(0, 1000))) !== rows)
                throw new CheckFailure(`row ${rows} corrupted: ${text.decode(chunk.subarray(0, 40))}…`);
            },
          );
          ensureEqual([tag, rows], ['COPY 8000', 8000], 'tag and rows (synchronous callback)');
          // An async callback is awaited before the next row: never two in flight.
          let inFlight = 0;
          let most = 0;
          rows = 0;
          await c.copyOutTo('copy (select i from generate_series(1, 2000) i) to stdout', async () => {
            most = Math.max(most, ++inFlight);
            rows++;
            if (rows % 100 === 0) await new Promise((r) => setTimeout(r, 1));
            inFlight--;
          });
          ensureEqual([rows, most], [2000, 1], 'rows and callbacks in flight (async callback)');
          // The server fails at row 5000: the rows before it arrive, the SQLSTATE surfaces, and the
          // session is usable afterwards.
          rows = 0;
          const err = await c
            .copyOutTo('copy (select 1 / (5000 - i) from generate_series(1, 9000) i) to stdout', () => {
              rows++;
            })
            .then(
              () => null,
              (e: unknown) => e as Error & { code?: string },
            );
          ensure(err, 'division by zero mid-COPY did not fail');
          ensureEqual([err.code, rows], ['22012', 4999], 'SQLSTATE and rows before the error');
          ensureEqual((await c.query('select 1')).rows, [['1']], 'session after the error');
          return `8000 rows in order; async callback awaited (1 in flight); 22012 after ${rows} rows`;
        },
      ),
  },
  {
    id: 'COPY TO STDOUT, 192 MB to a slow consumer over TLS: memory stays bounded',
    run: async (ctx) => {
      const rss = residentBytes();
      ensure(rss, 'this runtime exposes no resident-set size (process.memoryUsage / Deno.memoryUsage)');
      return session(
        await attempt(ctx, { ...at(ctx.env.pg15), user: 'postgres', sslmode: 'require' }),
        async (c) => {
          const rows = 192_000;
          for await (const _ of c.copyOut('copy (select 1) to stdout'));
          const idle = rss();
          let peak = idle;
          let bytes = 0;
          let sincePause = 0;
          for await (const chunk of c.copyOut(
            `copy (select repeat('x', 1000) from generate_series(1, ${rows})) to stdout`,
          )) {
            bytes += chunk.length;
            sincePause += chunk.length;
            // The consumer is slower than the server: backpressure must keep the rest in the kernel.
            if (sincePause >= 256 * 1024) {
              sincePause = 0;
              peak = Math.max(peak, rss());
              await new Promise((r) => setTimeout(r, 1));
            }
          }
          ensureEqual(bytes, rows * 1001, 'bytes');
          const grew = (peak - idle) / 2 ** 20;
          // Unbounded buffering would hold most of the 192 MB; the transports pause at 1 MiB queued.
          ensure(grew < 64, `resident set grew by ${grew.toFixed(1)} MiB while streaming 192 MB`);
          return `peak ${grew.toFixed(1)} MiB above idle for ${(bytes / 1e6).toFixed(0)} MB`;
        },
      );
    },
  },
  {
    id: 'COPY FROM STDIN, 8 MB over TLS',
    run: async (ctx) =>
      session(
        await attempt(ctx, { ...at(ctx.env.pg18), user: 'postgres', sslmode: 'require' }),
        async (c) => {
          await c.query('create temp table conformance_copy (n int, s text)');
          const N = 200_000;
          const pad = 'y'.repeat(32);
          function* source(): Generator<Uint8Array> {
            let lines: string[] = [];
            for (let i = 1; i <= N; i++) {
              lines.push(`${i}\t${pad}\n`);
              if (lines.length === 2000) {
                yield encode(lines.join(''));
                lines = [];
              }
            }
            if (lines.length) yield encode(lines.join(''));
          }
          const t0 = performance.now();
          const tag = await c.copyIn('copy conformance_copy from stdin', source());
          const ms = performance.now() - t0;
          ensureEqual(tag, `COPY ${N}`, 'command tag');
          const r = await c.query('select count(*), sum(n), sum(length(s)) from conformance_copy');
          ensureEqual(r.rows, [[String(N), String((N * (N + 1)) / 2), String(N * 32)]], 'table contents');
          return `${N} rows in ${ms.toFixed(0)} ms`;
        },
      ),
  },
];

/* ------------------------------------------------------------------------------------------------ */
/* Our server side, with our client                                                                  */
/* ------------------------------------------------------------------------------------------------ */

interface ServerSetup {
  tls: boolean;
  direct?: boolean;
  certAuth?: boolean;
}

/** Answers every Query with one row `<user>/<auth method>`, until Terminate. */
async function serveQueries(conn: ServerConnection): Promise<void> {
  for (let m = await conn.next(); m !== null && m.type !== 'Terminate'; m = await conn.next()) {
    if (m.type !== 'Query') continue;
    conn.queue(
      {
        type: 'RowDescription',
        fields: [
          { name: 'who', tableOid: 0, columnAttr: 0, typeOid: 25, typeSize: -1, typeModifier: -1, format: 0 },
        ],
      },
      { type: 'DataRow', fields: [encode(`${conn.session.user}/${conn.session.authMethod}`)] },
      { type: 'CommandComplete', tag: 'SELECT 1' },
      { type: 'ReadyForQuery', status: 'I' },
    );
    await conn.flush();
  }
  await conn.close();
}

async function withServer(
  ctx: Ctx,
  setup: ServerSetup,
  fn: (port: number) => Promise<string>,
): Promise<string> {
  const c = ctx.env.certs;
  const [certPem, keyPem, clientCa] = await Promise.all([
    readText(ctx, c.serverCert),
    readText(ctx, c.serverKey),
    readText(ctx, c.rootClientCa),
  ]);
  const verifier = await scramVerifier('sekret');
  const listener: Listener = await ctx.t.listen({ host: '127.0.0.1', port: 0 });
  const sessions: ServerConnection[] = [];
  const serverErrors: unknown[] = [];
  const auth = (): AuthPlan => (setup.certAuth ? { method: 'cert' } : { method: 'scram-sha-256', verifier });
  const loop = (async () => {
    for (let s = await listener.accept(); s !== null; s = await listener.accept()) {
      void acceptSession(
        s,
        {
          auth,
          tls: setup.tls ? { certificate: pemToDer(certPem) } : null,
          directTls: setup.direct ?? false,
        },
        {
          tls: setup.tls
            ? { cert: certPem, key: keyPem, ...(setup.certAuth ? { ca: [clientCa] } : {}) }
            : null,
          authenticationTimeout: 10,
          // A transport that lacks a server-side capability says so with UnsupportedError.
          onClose: (_reason, _log, error) => {
            if (error && isUnsupported(error)) serverErrors.push(error);
          },
        },
      ).then(
        (conn) => {
          if (!conn) return;
          sessions.push(conn);
          return serveQueries(conn);
        },
        (e: unknown) => serverErrors.push(e),
      );
    }
  })();
  const unsupported = () => serverErrors.find(isUnsupported);
  try {
    const detail = await fn(listener.port).catch((e: unknown) => {
      throw unsupported() ?? e;
    });
    if (serverErrors.length)
      throw unsupported() ?? new CheckFailure(`server side: ${String(serverErrors[0])}`);
    return detail;
  } finally {
    await listener.close();
    for (const s of sessions) s.destroy();
    await loop;
  }
}

async function queryWho(
  ctx: Ctx,
  port: number,
  params: Record<string, string>,
): Promise<{ who: string; tls: boolean; direct: boolean }> {
  const a = await attempt(ctx, {
    host: 'localhost',
    hostaddr: '127.0.0.1',
    port,
    user: 'alice',
    password: 'sekret',
    sslrootcert: ctx.env.certs.rootServerCa,
    ...params,
  });
  return session(a, async (c) => {
    const r = await c.query('select who');
    return { who: r.rows[0]?.[0] ?? '', tls: c.tls !== null, direct: c.handshake.direct };
  });
}

const serverChecks: Check[] = [
  {
    id: 'server side: plaintext, SCRAM-SHA-256',
    run: (ctx) =>
      withServer(ctx, { tls: false }, async (port) => {
        ensureEqual(
          await queryWho(ctx, port, { sslmode: 'prefer' }),
          { who: 'alice/SCRAM-SHA-256', tls: false, direct: false },
          'session',
        );
        const a = await attempt(ctx, {
          host: '127.0.0.1',
          port,
          user: 'alice',
          password: 'sekret',
          sslmode: 'require',
        });
        expectError(a, 'tls', 'server does not support SSL, but SSL was required');
        return 'prefer → plaintext; require refused';
      }),
  },
  {
    id: 'server side: STARTTLS, SCRAM-SHA-256-PLUS, verify-full',
    run: (ctx) =>
      withServer(ctx, { tls: true }, async (port) => {
        const got = await queryWho(ctx, port, { sslmode: 'verify-full', channel_binding: 'require' });
        ensureEqual(got, { who: 'alice/SCRAM-SHA-256-PLUS', tls: true, direct: false }, 'session');
        ensureEqual(
          await queryWho(ctx, port, { sslmode: 'disable' }),
          { who: 'alice/SCRAM-SHA-256', tls: false, direct: false },
          'plaintext session',
        );
        return got.who;
      }),
  },
  {
    id: 'server side: direct TLS (ALPN postgresql)',
    run: (ctx) =>
      withServer(ctx, { tls: true, direct: true }, async (port) => {
        const got = await queryWho(ctx, port, { sslmode: 'verify-full', sslnegotiation: 'direct' });
        ensureEqual(got, { who: 'alice/SCRAM-SHA-256-PLUS', tls: true, direct: true }, 'session');
        return got.who;
      }),
  },
  {
    id: 'server side: client certificate (cert auth)',
    run: (ctx) =>
      withServer(ctx, { tls: true, certAuth: true }, async (port) => {
        const got = await queryWho(ctx, port, {
          user: 'ssltestuser',
          sslmode: 'verify-full',
          sslcert: ctx.env.certs.clientCert,
          sslkey: ctx.env.certs.clientKey,
        });
        ensureEqual(got, { who: 'ssltestuser/cert', tls: true, direct: false }, 'session');
        const a = await attempt(ctx, {
          host: 'localhost',
          hostaddr: '127.0.0.1',
          port,
          user: 'ssltestuser',
          ...verifyFull(ctx),
        });
        ensure(a.error, 'connected without a client certificate');
        return `${got.who}; refused without a certificate`;
      }),
  },
];

/** Every check, in the order of the results table. */
export const CHECKS: readonly Check[] = [
  ...basicChecks,
  ...matrixChecks(),
  ...verifyChecks,
  ...clientCertChecks,
  ...scramChecks,
  ...fakeChecks,
  ...timeoutChecks,
  ...sessionChecks,
  ...serverChecks,
];

export const CHECK_IDS: readonly string[] = CHECKS.map((c) => c.id);

/** Runs the suite against `transport`; never throws for a failing check. */
export async function runConformance(
  transport: Transport,
  env: ConformanceEnv,
  options: ConformanceOptions = {},
): Promise<CheckResult[]> {
  const ctx: Ctx = { t: transport, env };
  const results: CheckResult[] = [];
  const timeoutMs = options.timeoutMs ?? 30_000;
  for (const check of CHECKS) {
    if (env.only && !env.only.some((p) => check.id.startsWith(p))) continue;
    const t0 = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let result: Omit<CheckResult, 'ms'>;
    try {
      const detail = await Promise.race([
        check.run(ctx),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new CheckFailure(`timed out after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      result = { id: check.id, status: 'pass', detail };
    } catch (e) {
      const err = e as Error;
      if (isUnsupported(err)) result = { id: check.id, status: 'unsupported', detail: reason(err) };
      else if (err instanceof CheckFailure) result = { id: check.id, status: 'fail', detail: err.message };
      else
        result = {
          id: check.id,
          status: 'fail',
          detail: `${err?.name ?? 'Error'}: ${err?.message ?? String(e)}`,
        };
    } finally {
      clearTimeout(timer);
    }
    const r = { ...result, ms: Math.round(performance.now() - t0) };
    results.push(r);
    options.onResult?.(r);
  }
  return results;
}
