/**
 * PostgreSQL's 005_negotiate_encryption.pl tables (reference §10.1), against real servers over Node:
 * users under host / hostssl / hostnossl × sslmode × sslnegotiation. Each row states the outcome
 * libpq reaches (plain / ssl / fail, read back from pg_stat_ssl) and how many TCP connections it
 * opens: a fallback that reconnects shows up as 2.
 */

import { readFileSync } from 'node:fs';
import {
  type HandshakeConfig,
  type NegotiateOptions,
  negotiate,
  type SslMode,
  type SslNegotiation,
} from '@pgconn/core';
import {
  type CertSet,
  createCertSet,
  type PgServer,
  startPostgres,
  startTlsPostgres,
  TLS_HBA,
  TLS_USERS,
} from '@pgconn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeTransport } from '../src/index.ts';

type Outcome = 'plain' | 'ssl' | 'fail';
type Row = [
  user: string,
  sslmode: SslMode,
  negotiation: SslNegotiation,
  outcome: Outcome,
  connections: number,
];

/** Server with SSL on. Rows from §10.1 plus verify-full (which behaves as require here: the cert matches). */
const SSL_ON: Row[] = [
  ['testuser', 'disable', 'postgres', 'plain', 1],
  ['testuser', 'allow', 'postgres', 'plain', 1],
  ['testuser', 'prefer', 'postgres', 'ssl', 1],
  ['testuser', 'require', 'postgres', 'ssl', 1],
  ['testuser', 'verify-full', 'postgres', 'ssl', 1],
  ['ssluser', 'disable', 'postgres', 'fail', 1],
  ['ssluser', 'allow', 'postgres', 'ssl', 2], // connect, authfail, reconnect, sslaccept, authok
  ['ssluser', 'prefer', 'postgres', 'ssl', 1],
  ['ssluser', 'require', 'postgres', 'ssl', 1],
  ['ssluser', 'verify-full', 'postgres', 'ssl', 1],
  ['nossluser', 'disable', 'postgres', 'plain', 1],
  ['nossluser', 'allow', 'postgres', 'plain', 1],
  ['nossluser', 'prefer', 'postgres', 'plain', 2], // connect, sslaccept, authfail, reconnect, authok
  ['nossluser', 'require', 'postgres', 'fail', 1],
  ['nossluser', 'verify-full', 'postgres', 'fail', 1],
];

/** Direct TLS rows (PostgreSQL ≥ 17): weak modes fail option validation before any connection. */
const DIRECT: Row[] = [
  ['testuser', 'disable', 'direct', 'fail', 0],
  ['testuser', 'allow', 'direct', 'fail', 0],
  ['testuser', 'prefer', 'direct', 'fail', 0],
  ['testuser', 'require', 'direct', 'ssl', 1],
  ['testuser', 'verify-full', 'direct', 'ssl', 1],
  ['ssluser', 'require', 'direct', 'ssl', 1],
  ['nossluser', 'require', 'direct', 'fail', 1], // connect, directsslaccept, authfail
];

/** Server with SSL off. */
const SSL_OFF: Row[] = [
  ['testuser', 'disable', 'postgres', 'plain', 1],
  ['testuser', 'allow', 'postgres', 'plain', 1],
  ['testuser', 'prefer', 'postgres', 'plain', 1], // connect, sslreject, authok
  ['testuser', 'require', 'postgres', 'fail', 1], // connect, sslreject
  ['testuser', 'verify-full', 'postgres', 'fail', 1],
  ['nossluser', 'prefer', 'postgres', 'plain', 1], // connect, sslreject, authok,
  ['ssluser', 'prefer', 'postgres', 'fail', 1],
  ['ssluser', 'allow', 'postgres', 'fail', 2], // authfail, reconnect, sslreject
];
const SSL_OFF_DIRECT: Row[] = [['testuser', 'require', 'direct', 'fail', 1]]; // connect, directsslreject

let certs: CertSet;
const servers: Partial<Record<'pg15' | 'pg18' | 'pg18off' | 'pg15off', PgServer>> = {};

beforeAll(async () => {
  certs = await createCertSet();
  const [pg15, pg18, pg18off, pg15off] = await Promise.all([
    startTlsPostgres(15, certs),
    startTlsPostgres(18, certs),
    startPostgres({
      version: 18,
      ssl: false,
      users: TLS_USERS,
      hba: TLS_HBA.filter((l) => !l.startsWith('hostssl')),
    }),
    startPostgres({
      version: 15,
      ssl: false,
      users: TLS_USERS,
      hba: TLS_HBA.filter((l) => !l.startsWith('hostssl')),
    }),
  ]);
  Object.assign(servers, { pg15, pg18, pg18off, pg15off });
}, 60_000);

afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s?.stop()));
  await certs?.remove();
});

async function attempt(
  server: PgServer,
  row: Row,
): Promise<{ outcome: Outcome; connections: number; error?: Error }> {
  const [user, sslmode, sslnegotiation] = row;
  let connections = 0;
  const config: HandshakeConfig = {
    host: 'localhost',
    user,
    database: 'postgres',
    sslmode,
    sslnegotiation,
    tls:
      sslmode === 'verify-full' || sslmode === 'verify-ca'
        ? {
            rootCert: [readFileSync(certs.bundles.rootServerCa, 'utf8')],
            rootCertPath: certs.bundles.rootServerCa,
          }
        : {},
  };
  const options: NegotiateOptions = {
    connectTimeout: 10,
    onStep: (s) => {
      if (s.state === 'STARTED') connections++;
    },
  };
  try {
    const conn = await negotiate(nodeTransport, { host: server.host, port: server.port }, config, options);
    try {
      const r = await conn.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
      const ssl = r.rows[0]?.[0] === 't';
      expect(conn.tls !== null).toBe(ssl);
      return { outcome: ssl ? 'ssl' : 'plain', connections };
    } finally {
      await conn.close();
    }
  } catch (error) {
    return { outcome: 'fail', connections, error: error as Error };
  }
}

const label = (r: Row) => `${r[0]} sslmode=${r[1]} sslnegotiation=${r[2]} -> ${r[3]} (${r[4]} connection(s))`;

describe.each([
  ['PostgreSQL 15, SSL on', 'pg15', SSL_ON],
  ['PostgreSQL 18, SSL on', 'pg18', [...SSL_ON, ...DIRECT]],
  ['PostgreSQL 15, SSL off', 'pg15off', SSL_OFF],
  ['PostgreSQL 18, SSL off', 'pg18off', [...SSL_OFF, ...SSL_OFF_DIRECT]],
] as const)('%s', (_name, key, rows) => {
  it.each(rows.map((r) => [label(r), r] as const))('%s', async (_l, row) => {
    const server = servers[key]!;
    const got = await attempt(server, row);
    expect({ outcome: got.outcome, connections: got.connections }, got.error?.message).toEqual({
      outcome: row[3],
      connections: row[4],
    });
  });
});

describe('failure messages use libpq wording', () => {
  it('require against a server without SSL', async () => {
    const got = await attempt(servers.pg15off!, ['testuser', 'require', 'postgres', 'fail', 1]);
    expect(got.error?.message).toBe(
      `connection to server at "127.0.0.1", port ${servers.pg15off!.port} failed: server does not support SSL, but SSL was required`,
    );
  });

  it('hostnossl under prefer reports both attempts', async () => {
    const got = await attempt(servers.pg15!, ['ssluser', 'disable', 'postgres', 'fail', 1]);
    expect(got.error?.message).toMatch(
      /failed: FATAL: {2}no pg_hba.conf entry for host "127.0.0.1", user "ssluser"/,
    );
    expect((got.error as { fields?: { code?: string } }).fields?.code).toBe('28000');
  });

  it('connection refused names the address', async () => {
    const r = negotiate(
      nodeTransport,
      { host: '127.0.0.1', port: 1 },
      { host: 'localhost', user: 'x', sslmode: 'disable' },
    );
    await expect(r).rejects.toThrow(
      'connection to server at "127.0.0.1", port 1 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?',
    );
  });
});
