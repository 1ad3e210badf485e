/**
 * Deno smoke test of @pgconn/transport-deno against real PostgreSQL, and of our server side on Deno.
 *
 *   node_modules/.bin/deno run -A packages/transport-deno/test/smoke.ts '<json>'
 *
 * (deno.test.ts runs it with a narrower permission set.) The JSON argument (SmokeEnv below) names the
 * servers started by `startTlsPostgres` (ports, socket directories) and the certificate files of
 * `createCertSet`. One line per case on stdout:
 *
 *   PASS <case>: <detail>
 *   UNSUPPORTED <case>: <the UnsupportedError's message>   (a capability Deno lacks, expected)
 *   FAIL <case>: <what happened>
 *
 * The exit code is 1 when a case failed. deno.test.ts checks each line's status against its own
 * table, so a case that silently changes from "unsupported" to "pass" (or disappears) is noticed.
 */
import {
  type AuthPlan,
  acceptSession,
  type Connection,
  type Listener,
  type ScramVerifier,
  type ServerCloseReason,
  type ServerConnection,
  scramVerifier,
  UnsupportedError,
} from '@pgconn/core';
import { connect, denoTransport, resolveDenoOptions, SERVER_CLIENT_CERT_UNSUPPORTED } from '../src/index.ts';

export interface SmokeServer {
  port: number;
  socketDir: string;
}

export interface SmokeEnv {
  pg15: SmokeServer;
  pg18: SmokeServer;
  /** Home directories: `.pgpass` for scramuser on pg15 at mode 0600, the same at 0644, none, a directory. */
  homes: { pgpass600: string; pgpass644: string; empty: string; pgpassDir: string };
  certs: {
    /** root+server_ca.crt */
    rootServerCa: string;
    /** wrong_ca.crt */
    wrongCa: string;
    /** root+server.crl */
    rootServerCrl: string;
    /** CN=certuser, signed by the client CA (PEM certificate and key). */
    certuser: { cert: string; key: string };
    /** client.crt (CN=ssltestuser) and its key as encrypted PEM, as DER and as encrypted DER. */
    ssltestuser: {
      cert: string;
      encryptedKey: string;
      passphrase: string;
      derKey: string;
      encryptedDerKey: string;
    };
    /** CN=ssltestuser signed by the wrong CA, and one revoked in the server's CRL (PEM cert and key). */
    wrongCaClient: { cert: string; key: string };
    revokedClient: { cert: string; key: string };
    /** The default server certificate (SANs localhost, 127.0.0.1, ::1) for our own server. */
    serverLocalhost: { cert: string; key: string };
    /** root+client_ca.crt: the CA our server requests client certificates with. */
    rootClientCa: string;
  };
}

type Status = 'PASS' | 'UNSUPPORTED' | 'FAIL';

const env: SmokeEnv = JSON.parse(Deno.args[0] ?? '{}');
const C = env.certs;
let failed = 0;

function report(name: string, status: Status, detail: string): void {
  if (status === 'FAIL') failed++;
  console.log(`${status} ${name}: ${detail.replaceAll('\n', ' | ')}`);
}

/** Common conninfo: no ~/.postgresql, no PG* environment (env: {} below), bounded connect time. */
const base = (port: number) =>
  `hostaddr=127.0.0.1 port=${port} dbname=postgres connect_timeout=10 ` +
  `sslcert=${C.rootServerCa}.none sslkey=${C.rootServerCa}.none sslrootcert=${C.rootServerCa}.none ` +
  `sslcrl=${C.rootServerCa}.none sslcrldir=${C.rootServerCa}.none`;

const verified = `host=localhost sslmode=verify-full sslrootcert=${C.rootServerCa}`;

async function withConn<T>(conninfo: string, f: (c: Connection) => Promise<T>): Promise<T> {
  const c = await connect(conninfo, { env: {} });
  try {
    return await f(c);
  } finally {
    await c.close();
  }
}

/** `select 1` plus the session's view of its TLS state. */
async function select1(c: Connection): Promise<string> {
  const one = await c.query('select 1');
  if (one.rows[0]?.[0] !== '1') throw new Error(`select 1 returned ${JSON.stringify(one.rows)}`);
  const ssl = await c.query('select ssl, version from pg_stat_ssl where pid = pg_backend_pid()');
  const [on, version] = ssl.rows[0] ?? [];
  if ((c.tls !== null) !== (on === 't')) throw new Error(`pg_stat_ssl.ssl=${on} but tls=${c.tls !== null}`);
  const tls = c.tls
    ? `${c.tls.protocol} ${c.tls.cipher} alpn=${c.tls.alpnProtocol ?? 'none'} server says ${version}`
    : 'plaintext';
  return `select 1 = 1, ${tls}, auth ${c.handshake.authMethod}`;
}

type Case = () => Promise<string>;

async function run(name: string, expected: Status, body: Case, errorMatch?: RegExp): Promise<void> {
  try {
    const detail = await body();
    if (errorMatch) report(name, 'FAIL', `expected an error matching ${errorMatch}, got success: ${detail}`);
    else if (expected === 'UNSUPPORTED') report(name, 'FAIL', `expected UnsupportedError, got: ${detail}`);
    else report(name, 'PASS', detail);
  } catch (e) {
    const err = e as Error;
    if (e instanceof UnsupportedError) {
      report(name, expected === 'UNSUPPORTED' ? 'UNSUPPORTED' : 'FAIL', `${err.name}: ${err.message}`);
    } else if (errorMatch?.test(err.message)) {
      report(name, 'PASS', `failed as expected: ${err.name}: ${err.message}`);
    } else {
      report(name, 'FAIL', `${err.name}: ${err.message}`);
    }
  }
}

const pass = (name: string, body: Case) => run(name, 'PASS', body);
const failsWith = (name: string, re: RegExp, body: Case) => run(name, 'PASS', body, re);
const unsupported = (name: string, body: Case) => run(name, 'UNSUPPORTED', body);

// --- Client side against PostgreSQL 15 and 18 -------------------------------------------------------

for (const v of [15, 18] as const) {
  const pg = v === 15 ? env.pg15 : env.pg18;
  const b = base(pg.port);
  await pass(`pg${v} sslmode=disable`, () =>
    withConn(`${b} user=testuser sslmode=disable`, async (c) => {
      if (c.tls) throw new Error('TLS in use with sslmode=disable');
      return select1(c);
    }),
  );
  await pass(`pg${v} unix socket`, () =>
    withConn(
      `host=${pg.socketDir} port=${pg.port} dbname=postgres user=localuser sslmode=disable`,
      async (c) => {
        if (!('path' in c.endpoint)) throw new Error('not a Unix socket');
        return `${await select1(c)}, socket ${c.endpoint.path}`;
      },
    ),
  );
  await pass(`pg${v} sslmode=require`, () =>
    withConn(`${b} user=ssluser sslmode=require`, async (c) => {
      if (!c.tls) throw new Error('no TLS');
      return select1(c);
    }),
  );
  await pass(`pg${v} sslmode=verify-full`, () =>
    withConn(`${b} user=ssluser ${verified}`, async (c) => {
      if (!c.tls?.authorized || !c.tls.peerCertificate)
        throw new Error('chain not verified / no peer certificate');
      return select1(c);
    }),
  );
  await failsWith(
    `pg${v} verify-full host name mismatch`,
    /server certificate for "localhost" \(and 2 other names\) does not match host name "wrong\.pg-ssltest\.test"/,
    () => withConn(`${b} user=ssluser ${verified} host=wrong.pg-ssltest.test`, select1),
  );
  await failsWith(`pg${v} verify-ca with a foreign root`, /SSL error: certificate verify failed/, () =>
    withConn(`${b} user=ssluser sslmode=verify-ca sslrootcert=${C.wrongCa}`, select1),
  );
  await pass(`pg${v} SCRAM-SHA-256-PLUS`, () =>
    withConn(`${b} user=scramuser password=pass ${verified} channel_binding=require`, async (c) => {
      if (c.handshake.authMethod !== 'SCRAM-SHA-256-PLUS') throw new Error(`auth ${c.handshake.authMethod}`);
      return select1(c);
    }),
  );
  await pass(`pg${v} client certificate`, () =>
    withConn(
      `${b} user=certuser ${verified} sslcert=${C.certuser.cert} sslkey=${C.certuser.key}`,
      async (c) => {
        const dn = await c.query('select client_dn from pg_stat_ssl where pid = pg_backend_pid()');
        return `${await select1(c)}, client_dn ${dn.rows[0]?.[0]}`;
      },
    ),
  );
}

const b15 = base(env.pg15.port);
const b18 = base(env.pg18.port);

await pass('pg18 direct TLS (sslnegotiation=direct)', () =>
  withConn(`${b18} user=ssluser ${verified} sslnegotiation=direct`, async (c) => {
    if (!c.handshake.direct || c.tls?.alpnProtocol !== 'postgresql')
      throw new Error('not a direct TLS session');
    return select1(c);
  }),
);
await pass('pg18 direct TLS + SCRAM-SHA-256-PLUS', () =>
  withConn(
    `${b18} user=scramuser password=pass ${verified} sslnegotiation=direct channel_binding=require`,
    select1,
  ),
);
await failsWith('pg15 direct TLS refused (no ALPN before 17)', /SSL|ALPN|closed|EOF/, () =>
  withConn(`${b15} user=ssluser ${verified} sslnegotiation=direct`, select1),
);
await pass('pg15 SCRAM-SHA-256 (plaintext)', () =>
  withConn(`${b15} user=scramuser password=pass sslmode=disable`, async (c) => {
    if (c.handshake.authMethod !== 'SCRAM-SHA-256') throw new Error(`auth ${c.handshake.authMethod}`);
    return select1(c);
  }),
);
await pass('pg15 ~/.pgpass (0600 used; 0644 and a directory ignored with warnings; none)', async () => {
  const ci = `${b15} user=scramuser sslmode=disable`;
  const open = resolveDenoOptions(ci, { env: { HOME: env.homes.pgpass644 } });
  const warning = `WARNING: password file "${env.homes.pgpass644}/.pgpass" has group or world access; permissions should be u=rw (0600) or less`;
  if (open.hosts[0]?.password !== undefined || open.warnings.join() !== warning) {
    throw new Error(`0644: password ${open.hosts[0]?.password}, warnings ${JSON.stringify(open.warnings)}`);
  }
  const none = resolveDenoOptions(ci, { env: { HOME: env.homes.empty } });
  if (none.hosts[0]?.password !== undefined || none.warnings.length > 0) {
    throw new Error(
      `no file: password ${none.hosts[0]?.password}, warnings ${JSON.stringify(none.warnings)}`,
    );
  }
  const dir = resolveDenoOptions(ci, { env: { HOME: env.homes.pgpassDir } });
  const notPlain = `WARNING: password file "${env.homes.pgpassDir}/.pgpass" is not a plain file`;
  if (dir.hosts[0]?.password !== undefined || dir.warnings.join() !== notPlain) {
    throw new Error(
      `directory: password ${dir.hosts[0]?.password}, warnings ${JSON.stringify(dir.warnings)}`,
    );
  }
  const c = await connect(ci, { env: { HOME: env.homes.pgpass600 } });
  try {
    if (c.handshake.authMethod !== 'SCRAM-SHA-256') throw new Error(`auth ${c.handshake.authMethod}`);
    return `0644 and a directory ignored with their warnings, none without one; 0600: ${await select1(c)}`;
  } finally {
    await c.close();
  }
});
await pass('pg15 client certificate, encrypted PEM key (sslpassword)', () =>
  withConn(
    `${b15} user=ssltestuser ${verified} sslcert=${C.ssltestuser.cert} sslkey=${C.ssltestuser.encryptedKey} sslpassword=${C.ssltestuser.passphrase}`,
    select1,
  ),
);
await pass('pg15 client certificate, DER key', () =>
  withConn(
    `${b15} user=ssltestuser ${verified} sslcert=${C.ssltestuser.cert} sslkey=${C.ssltestuser.derKey}`,
    select1,
  ),
);
await pass('pg15 client certificate, encrypted DER key (sslpassword)', () =>
  withConn(
    `${b15} user=ssltestuser ${verified} sslcert=${C.ssltestuser.cert} sslkey=${C.ssltestuser.encryptedDerKey} sslpassword=${C.ssltestuser.passphrase}`,
    select1,
  ),
);
// Deno's node:tls would drop a key it cannot decrypt and connect without a certificate: libpq fails.
await failsWith('pg15 client certificate, wrong sslpassword', /SSL error: bad decrypt$/, () =>
  withConn(
    `${b15} user=ssltestuser ${verified} sslcert=${C.ssltestuser.cert} sslkey=${C.ssltestuser.encryptedKey} sslpassword=wrong`,
    select1,
  ),
);
await failsWith(
  'pg15 client certificate, encrypted DER key with a wrong sslpassword',
  /SSL error: bad decrypt$/,
  () =>
    withConn(
      `${b15} user=ssltestuser ${verified} sslcert=${C.ssltestuser.cert} sslkey=${C.ssltestuser.encryptedDerKey} sslpassword=wrong`,
      select1,
    ),
);
await failsWith(
  'pg15 client certificate, key of another certificate',
  /SSL error: key values mismatch$/,
  () =>
    withConn(
      `${b15} user=ssltestuser ${verified} sslcert=${C.ssltestuser.cert} sslkey=${C.wrongCaClient.key}`,
      select1,
    ),
);
await failsWith(
  'pg15 cert auth without a certificate',
  /connection requires a valid client certificate/,
  () => withConn(`${b15} user=certuser ${verified}`, select1),
);
await pass('pg15 sslmode=prefer falls back to plaintext (hostnossl)', () =>
  withConn(`${b15} user=nossluser sslmode=prefer sslrootcert=${C.rootServerCa}`, async (c) => {
    if (c.tls || c.handshake.connections !== 2)
      throw new Error(`tls=${!!c.tls}, ${c.handshake.connections} connections`);
    return `${await select1(c)}, after ${c.handshake.connections} connections`;
  }),
);
await failsWith(
  'pg15 sslrootcert=system (test CA not in the system store)',
  /SSL error: certificate verify failed/,
  () => withConn(`${b15} user=ssluser host=localhost sslrootcert=system`, select1),
);
await failsWith('pg15 client certificate from an unknown CA', /SSL error: tlsv1 alert unknown ca/, () =>
  withConn(
    `${b15} user=ssltestuser ${verified} sslcert=${C.wrongCaClient.cert} sslkey=${C.wrongCaClient.key}`,
    select1,
  ),
);
await failsWith('pg15 revoked client certificate', /SSL error: sslv3 alert certificate revoked/, () =>
  withConn(
    `${b15} user=ssltestuser ${verified} sslcert=${C.revokedClient.cert} sslkey=${C.revokedClient.key}`,
    select1,
  ),
);
await unsupported('pg15 sslcrl (certificate revocation list)', () =>
  withConn(`${b15} user=ssluser ${verified} sslcrl=${C.rootServerCrl}`, select1),
);
await unsupported('pg15 ssl_max_protocol_version=TLSv1.1', () =>
  withConn(
    `${b15} user=ssluser sslmode=require ssl_min_protocol_version=TLSv1 ssl_max_protocol_version=TLSv1.1`,
    select1,
  ),
);
await pass('pg15 ssl_max_protocol_version=TLSv1.2', () =>
  withConn(`${b15} user=ssluser ${verified} ssl_max_protocol_version=TLSv1.2`, async (c) => {
    if (c.tls?.protocol !== 'TLSv1.2') throw new Error(`protocol ${c.tls?.protocol}`);
    return select1(c);
  }),
);
await pass('pg15 20 MB result over TLS', () =>
  withConn(`${b15} user=ssluser ${verified}`, async (c) => {
    const r = await c.query('select i, repeat(chr(65 + i % 26), 1000) from generate_series(1, 20000) i');
    for (const [i, s] of r.rows) {
      const ch = String.fromCharCode(65 + (Number(i) % 26));
      if (s?.length !== 1000 || s[0] !== ch || s[999] !== ch) throw new Error(`row ${i} corrupted`);
    }
    return `${r.rows.length} rows intact`;
  }),
);
await pass('pg15 COPY in and out over TLS', () =>
  withConn(`${b15} user=postgres ${verified}`, async (c) => {
    await c.query('create temp table t (a text)');
    const line = new TextEncoder().encode(`${'x'.repeat(999)}\n`);
    const rows = 5000;
    const source = (function* () {
      for (let i = 0; i < rows; i++) yield line;
    })();
    const inTag = await c.copyIn('copy t from stdin', source);
    let bytes = 0;
    for await (const chunk of c.copyOut('copy t to stdout')) bytes += chunk.length;
    if (bytes !== rows * 1000) throw new Error(`copied out ${bytes} bytes`);
    return `${inTag}, ${bytes} bytes out`;
  }),
);
await failsWith('pg15 cancel over TLS', /canceling statement due to user request/, () =>
  withConn(`${b15} user=ssluser ${verified}`, async (c) => {
    const q = c.query('select pg_sleep(20)');
    q.catch(() => {}); // awaited below; rejects while cancel() runs
    await new Promise((r) => setTimeout(r, 300));
    await c.cancel();
    await q;
    return 'query was not cancelled';
  }),
);

// --- Our server side on Deno (Deno.listen + node:tls server upgrade), our client on Deno -------------

const listeners: Listener[] = [];
const closes: Array<{ reason: ServerCloseReason; log: string | undefined; error: Error | undefined }> = [];
const pem = (path: string) => Deno.readTextFileSync(path);
const derOf = (certPem: string): Uint8Array => {
  const b64 = certPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
};

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
      {
        type: 'DataRow',
        fields: [new TextEncoder().encode(`${conn.session.user}/${conn.session.authMethod}`)],
      },
      { type: 'CommandComplete', tag: 'SELECT 1' },
      { type: 'ReadyForQuery', status: 'I' },
    );
    await conn.flush();
  }
  await conn.close();
}

/** Our server on Deno; `clientCa`: request client certificates (needed for cert auth). */
async function startServer(clientCa: boolean): Promise<number> {
  const listener = await denoTransport.listen({ host: '127.0.0.1', port: 0 });
  listeners.push(listener);
  const certPem = pem(C.serverLocalhost.cert);
  const verifier: ScramVerifier = await scramVerifier('sekret');
  const auth = (r: { user: string }): AuthPlan =>
    r.user === 'certuser' ? { method: 'cert' } : { method: 'scram-sha-256', verifier };
  void (async () => {
    for (let s = await listener.accept(); s !== null; s = await listener.accept()) {
      void acceptSession(
        s,
        { auth, tls: { certificate: derOf(certPem) }, directTls: true },
        {
          tls: {
            cert: certPem,
            key: pem(C.serverLocalhost.key),
            ...(clientCa ? { ca: [pem(C.rootClientCa)] } : {}),
          },
          authenticationTimeout: 10,
          onClose: (reason, log, error) => closes.push({ reason, log, error }),
        },
      ).then((conn) => (conn ? serveQueries(conn) : undefined));
    }
  })();
  return listener.port;
}

const ours = await startServer(false);
const oursWithCa = await startServer(true);
const at = (port: number) =>
  `host=localhost hostaddr=127.0.0.1 port=${port} dbname=postgres connect_timeout=10 sslmode=verify-full sslrootcert=${C.rootServerCa}`;
const sb = at(ours);
const who = async (c: Connection) => {
  const r = await c.query('select who');
  return `${r.rows[0]?.[0]}, ${c.tls?.protocol}, alpn=${c.tls?.alpnProtocol ?? 'none'}`;
};

await pass('deno server, STARTTLS + SCRAM-SHA-256-PLUS', () =>
  withConn(`${sb} user=alice password=sekret channel_binding=require`, async (c) => {
    if (c.handshake.authMethod !== 'SCRAM-SHA-256-PLUS') throw new Error(`auth ${c.handshake.authMethod}`);
    return who(c);
  }),
);
await pass('deno server, direct TLS (ALPN postgresql)', () =>
  withConn(`${sb} user=alice password=sekret sslnegotiation=direct`, async (c) => {
    if (!c.handshake.direct) throw new Error('not direct');
    return who(c);
  }),
);
await pass('deno server, plaintext SCRAM-SHA-256', () =>
  withConn(`host=127.0.0.1 port=${ours} dbname=postgres user=alice password=sekret sslmode=disable`, who),
);
// A server with a client CA refuses before the handshake (UnsupportedError, handed to onClose): Deno's
// node:tls server cannot verify client certificates. The client sees the connection closed.
await unsupported('deno server, client certificate authentication', async () => {
  closes.length = 0;
  try {
    await withConn(
      `${at(oursWithCa)} user=certuser sslcert=${C.certuser.cert} sslkey=${C.certuser.key}`,
      who,
    );
  } catch (e) {
    await new Promise((r) => setTimeout(r, 50));
    const refused = closes.find((x) => x.reason === 'tls-failed' && x.error instanceof UnsupportedError);
    if (refused?.error?.message === SERVER_CLIENT_CERT_UNSUPPORTED) throw refused.error;
    throw e;
  }
  return 'client certificate accepted';
});

for (const l of listeners) await l.close();
console.log(failed === 0 ? 'DONE ok' : `DONE ${failed} failed`);
Deno.exit(failed === 0 ? 0 : 1);
