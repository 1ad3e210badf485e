/**
 * libpq's multi-host connect (reference §3.3–§3.5) against real servers: a PostgreSQL 15 primary and
 * a streaming hot standby of it, plus loopback stand-ins for the failures a host list must survive
 * (a closed port, a black hole, a name that does not resolve, a server answering 57P03). Each case
 * checks which server the session landed on and the trace (onStep) of every rejected attempt.
 */

import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Connection, ConnectStep } from '@pgconn/core';
import { hbaLine, type PgServer, startPostgres, startStandby, TEST_PASSWORD } from '@pgconn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../src/index.ts';

const cli = fileURLToPath(new URL('../../cli/dist/bin.js', import.meta.url));

let primary: PgServer;
let standby: PgServer;
/** An empty HOME: no ~/.pgpass, service file or client certificates of the real user. */
let home: string;
/** A loopback port nothing listens on (connection refused). */
let closedPort: number;
const fakes: FakeServer[] = [];

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'pgconn-multihost-'));
  primary = await startPostgres({
    version: 15,
    replication: true,
    users: [{ name: 'testuser' }, { name: 'scramuser', password: TEST_PASSWORD }],
    hba: [
      hbaLine('host', 'postgres', 'trust'),
      hbaLine('host', 'testuser', 'trust'),
      hbaLine('host', 'scramuser', 'scram-sha-256'),
    ],
  });
  // Same roles (replicated); the standby asks scramuser for a cleartext password, so a password
  // leaking from the primary's attempt would be accepted there (CVE-2018-10915 test below).
  standby = await startStandby(primary, {
    hba: [
      hbaLine('host', 'postgres', 'trust'),
      hbaLine('host', 'testuser', 'trust'),
      hbaLine('host', 'scramuser', 'password'),
    ],
  });
  closedPort = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}, 60_000);

afterAll(async () => {
  await Promise.all(fakes.map((f) => f.close()));
  await Promise.all([standby?.stop(), primary?.stop()]);
  if (home) rmSync(home, { recursive: true, force: true });
});

/* ------------------------------------------------------------------------------------------------ */

interface Attempt {
  conn?: Connection;
  error?: Error & { code?: string };
  steps: ConnectStep[];
  ms: number;
}

/** connect() with an isolated environment; records the trace and the elapsed time. */
async function attempt(conninfo: string, env: Record<string, string> = { HOME: home }): Promise<Attempt> {
  const steps: ConnectStep[] = [];
  const t0 = performance.now();
  try {
    const conn = await connect(conninfo, { env, onStep: (s) => steps.push(s) });
    return { conn, steps, ms: performance.now() - t0 };
  } catch (error) {
    return { error: error as Attempt['error'], steps, ms: performance.now() - t0 };
  }
}

/** Connects (must succeed), says which server answered, and closes. */
async function landed(conninfo: string): Promise<{ role: 'primary' | 'standby'; got: Attempt }> {
  const got = await attempt(conninfo);
  expect(got.conn, got.error?.message).toBeDefined();
  const conn = got.conn!;
  try {
    const recovery = (await conn.query('select pg_is_in_recovery()')).rows[0]?.[0];
    const role = recovery === 't' ? 'standby' : 'primary';
    // The endpoint agrees with what the server says about itself.
    expect('port' in conn.endpoint && conn.endpoint.port).toBe(
      role === 'standby' ? standby.port : primary.port,
    );
    return { role, got };
  } finally {
    await conn.close();
  }
}

/** The rejected attempts of a trace: `port: first line of the reason`. */
const rejected = (steps: ConnectStep[]) =>
  steps.filter((s) => s.state === 'BAD').map((s) => `${s.port}: ${s.detail.split('\n')[0]}`);

const hosts = (...ports: number[]) =>
  `host=${ports.map(() => '127.0.0.1').join(',')} port=${ports.join(',')} dbname=postgres sslmode=disable`;

/** Counts `connection received` lines in a server log. */
const received = (pg: PgServer) =>
  pg
    .log()
    .split('\n')
    .filter((l) => l.includes('connection received')).length;

/* ------------------------------------------------------------------------------------------------ */
/* Fake servers: just enough protocol to answer with a given ErrorResponse / hold the connection     */
/* ------------------------------------------------------------------------------------------------ */

interface FakeServer {
  port: number;
  connections: number;
  close(): Promise<void>;
}

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

function errorResponse(severity: string, code: string, text: string): Buffer {
  const field = (c: string, v: string) => Buffer.from(`${c}${v}\0`, 'utf8');
  return message(
    'E',
    Buffer.concat([
      field('S', severity),
      field('V', severity),
      field('C', code),
      field('M', text),
      Buffer.from([0]),
    ]),
  );
}

const cstr = (s: string) => Buffer.from(`${s}\0`, 'utf8');

/**
 * A loopback server. Pre-startup requests (SSLRequest, GSSENCRequest) get 'N'; the StartupMessage
 * gets `onStartup`'s bytes; later messages go to `onMessage`. `hold`: never answer anything.
 */
async function fakeServer(opts: {
  hold?: boolean;
  onStartup?: () => Buffer;
  onMessage?: (type: string, body: Buffer, socket: Socket) => void;
}): Promise<FakeServer> {
  const sockets = new Set<Socket>();
  const fake: FakeServer = { port: 0, connections: 0, close: async () => {} };
  const server: Server = createServer((socket) => {
    fake.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    if (opts.hold) return;
    let buf = Buffer.alloc(0);
    let started = false;
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (!started) {
          if (buf.length < 8) return;
          const len = buf.readInt32BE(0);
          if (buf.length < len) return;
          const code = buf.readInt32BE(4);
          buf = buf.subarray(len);
          if (code === 80877103 || code === 80877104) socket.write('N');
          else {
            started = true;
            const reply = opts.onStartup?.() ?? Buffer.alloc(0);
            socket.write(reply);
            if (reply[0] === 0x45) socket.end(); // 'E' during startup: the server exits
          }
          continue;
        }
        if (buf.length < 5) return;
        const len = buf.readInt32BE(1);
        if (buf.length < len + 1) return;
        const type = String.fromCharCode(buf[0]!);
        const body = buf.subarray(5, len + 1);
        buf = buf.subarray(len + 1);
        if (type === 'X') socket.end();
        else opts.onMessage?.(type, body, socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.port = (server.address() as { port: number }).port;
  fake.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  fakes.push(fake);
  return fake;
}

/* ------------------------------------------------------------------------------------------------ */

type Role = 'primary' | 'standby';
type Row = [attrs: string, order: [Role, Role], lands: Role, rejects: Array<[Role, string]>];

/** §3.4 CHECK_TARGET: where each target_session_attrs value lands, and what it turns down first. */
const ROWS: Row[] = [
  ['any', ['primary', 'standby'], 'primary', []],
  ['read-write', ['primary', 'standby'], 'primary', []],
  ['read-only', ['primary', 'standby'], 'standby', [['primary', 'session is not read-only']]],
  ['primary', ['primary', 'standby'], 'primary', []],
  ['standby', ['primary', 'standby'], 'standby', [['primary', 'server is not in hot standby mode']]],
  ['prefer-standby', ['primary', 'standby'], 'standby', [['primary', 'server is not in hot standby mode']]],
  ['any', ['standby', 'primary'], 'standby', []],
  ['read-write', ['standby', 'primary'], 'primary', [['standby', 'session is read-only']]],
  ['read-only', ['standby', 'primary'], 'standby', []],
  ['primary', ['standby', 'primary'], 'primary', [['standby', 'server is in hot standby mode']]],
  ['standby', ['standby', 'primary'], 'standby', []],
  ['prefer-standby', ['standby', 'primary'], 'standby', []],
];

describe('target_session_attrs against primary + hot standby (PostgreSQL 15)', () => {
  const portOf = (r: Role) => (r === 'primary' ? primary.port : standby.port);

  it.each(ROWS.map((r) => [`${r[0]} with hosts ${r[1].join(',')} -> ${r[2]}`, r] as const))(
    '%s',
    async (_label, [attrs, order, lands, rejects]) => {
      const { role, got } = await landed(
        `${hosts(portOf(order[0]), portOf(order[1]))} user=testuser target_session_attrs=${attrs}`,
      );
      expect(role).toBe(lands);
      expect(rejected(got.steps)).toEqual(rejects.map(([r, why]) => `${portOf(r)}: ${why}`));
      // Every attempt is traced with the host slot it belongs to.
      expect(got.steps.filter((s) => s.state === 'STARTED').map((s) => s.port)).toEqual([
        portOf(order[0]),
        ...(rejects.length ? [portOf(order[1])] : []),
      ]);
    },
  );

  it('prefer-standby with the standby down falls back to the primary on the second pass', async () => {
    const { role, got } = await landed(
      `${hosts(closedPort, primary.port)} user=testuser target_session_attrs=prefer-standby`,
    );
    expect(role).toBe('primary');
    expect(rejected(got.steps)).toEqual([
      `${closedPort}: Connection refused`,
      `${primary.port}: server is not in hot standby mode`,
      `${closedPort}: Connection refused`, // pass 2 walks the whole list again
    ]);
    expect(got.steps.filter((s) => s.state === 'STARTED').map((s) => s.port)).toEqual([
      closedPort,
      primary.port,
      closedPort,
      primary.port,
    ]);
  });
});

describe('moving on to the next host', () => {
  it('a refused connection: the next host is used and nothing is thrown', async () => {
    const { role, got } = await landed(`${hosts(closedPort, standby.port)} user=testuser`);
    expect(role).toBe('standby');
    expect(rejected(got.steps)).toEqual([`${closedPort}: Connection refused`]);
  });

  it('a black hole: connect_timeout=2 expires, then the next host is used', async () => {
    const hole = await fakeServer({ hold: true });
    const { role, got } = await landed(`${hosts(hole.port, primary.port)} user=testuser connect_timeout=2`);
    expect(role).toBe('primary');
    expect(rejected(got.steps)).toEqual([`${hole.port}: timeout expired`]);
    expect(hole.connections).toBe(1);
    expect(got.ms).toBeGreaterThanOrEqual(1900);
    expect(got.ms).toBeLessThan(4000);
  });

  it('a host name that does not resolve: recorded in the trace, the next host is used', async () => {
    const { role, got } = await landed(
      `host=nonexistent.invalid,127.0.0.1 port=5432,${primary.port} dbname=postgres user=testuser sslmode=disable`,
    );
    expect(role).toBe('primary');
    const bad = got.steps.filter((s) => s.state === 'BAD');
    expect(bad).toHaveLength(1);
    expect(bad[0]).toMatchObject({ host: 'nonexistent.invalid', port: 5432 });
    expect(bad[0]!.detail).toMatch(/^could not translate host name "nonexistent\.invalid" to address: \S/);
  });

  it('57P03 (cannot_connect_now) skips to the next host at once; another FATAL ends the attempt', async () => {
    const starting = await fakeServer({
      onStartup: () => errorResponse('FATAL', '57P03', 'the database system is starting up'),
    });
    // sslmode=allow: any other startup error would reconnect with SSL (§3.5); 57P03 does not.
    const { role, got } = await landed(`${hosts(starting.port, primary.port)} user=testuser sslmode=allow`);
    expect(role).toBe('primary');
    expect(rejected(got.steps)).toEqual([`${starting.port}: FATAL:  the database system is starting up`]);
    expect(starting.connections).toBe(1);

    const refusing = await fakeServer({
      onStartup: () => errorResponse('FATAL', '28000', 'no pg_hba.conf entry for host "127.0.0.1"'),
    });
    const other = await attempt(`${hosts(refusing.port, primary.port)} user=testuser`);
    expect(other.error?.message).toBe(
      `connection to server at "127.0.0.1", port ${refusing.port} failed: FATAL:  no pg_hba.conf entry for host "127.0.0.1"`,
    );
    expect(other.steps.some((s) => s.port === primary.port)).toBe(false);
  });

  it('a failing CHECK_TARGET query (server without in_hot_standby) moves on to the next host', async () => {
    // A PostgreSQL 13-like server: no in_hot_standby / default_transaction_read_only reported, so
    // libpq asks with a query. The query fails here; libpq then tries the next host (§3.4).
    const old = await fakeServer({
      onStartup: () =>
        Buffer.concat([
          message('R', Buffer.from([0, 0, 0, 0])),
          message('S', Buffer.concat([cstr('server_version'), cstr('13.0')])),
          message('K', Buffer.from([0, 0, 0, 7, 0, 0, 0, 9])),
          message('Z', Buffer.from('I')),
        ]),
      onMessage: (type, _body, socket) => {
        if (type !== 'Q') return;
        socket.write(
          Buffer.concat([
            errorResponse('ERROR', '42501', 'permission denied'),
            message('Z', Buffer.from('I')),
          ]),
        );
      },
    });
    const standbyFirst = await landed(
      `${hosts(old.port, standby.port)} user=testuser target_session_attrs=standby`,
    );
    expect(standbyFirst.role).toBe('standby');
    expect(rejected(standbyFirst.got.steps)).toEqual([`${old.port}: ERROR:  permission denied`]);
    expect(standbyFirst.got.steps.find((s) => s.state === 'BAD')?.detail).toContain(
      '"SELECT pg_is_in_recovery()" failed',
    );

    const rw = await landed(`${hosts(old.port, primary.port)} user=testuser target_session_attrs=read-write`);
    expect(rw.role).toBe('primary');
    expect(rw.got.steps.find((s) => s.state === 'BAD')?.detail).toContain(
      '"SHOW transaction_read_only" failed',
    );
    expect(old.connections).toBe(2);
  });
});

describe('failures', () => {
  it('all hosts failing: one error, one libpq-style line per attempt', async () => {
    const got = await attempt(
      `host=nonexistent.invalid,127.0.0.1,127.0.0.1 port=5432,${closedPort},${standby.port} ` +
        'dbname=postgres user=testuser sslmode=disable target_session_attrs=primary',
    );
    expect(got.conn).toBeUndefined();
    const lines = got.error!.message.split('\n');
    expect(lines).toEqual([
      expect.stringMatching(/^could not translate host name "nonexistent\.invalid" to address: \S/),
      `connection to server at "127.0.0.1", port ${closedPort} failed: Connection refused`,
      '\tIs the server running on that host and accepting TCP/IP connections?',
      `connection to server at "127.0.0.1", port ${standby.port} failed: server is in hot standby mode`,
    ]);
  });

  it('an authentication failure on the first host does not try the second (libpq rule)', async () => {
    const before = { primary: received(primary), standby: received(standby) };
    const got = await attempt(`${hosts(primary.port, standby.port)} user=scramuser password=wrong`);
    expect(got.error?.message).toBe(
      `connection to server at "127.0.0.1", port ${primary.port} failed: FATAL:  password authentication failed for user "scramuser"`,
    );
    expect(got.error?.code).toBe('28P01');
    expect(new Set(got.steps.map((s) => s.port))).toEqual(new Set([primary.port]));
    expect(received(primary) - before.primary).toBe(1);
    expect(received(standby) - before.standby).toBe(0);
  });

  it('per-host passwords: the password meant for the first host never reaches the second (CVE-2018-10915)', async () => {
    // ~/.pgpass holds a password for the primary only. The primary takes it (SCRAM), is turned down
    // as not a standby; the standby then asks for a cleartext password: a leak would log in.
    const pgpassHome = mkdtempSync(join(tmpdir(), 'pgconn-multihost-pgpass-'));
    try {
      const write = (lines: string[]) => {
        writeFileSync(join(pgpassHome, '.pgpass'), `${lines.join('\n')}\n`);
        chmodSync(join(pgpassHome, '.pgpass'), 0o600);
      };
      const conninfo = `${hosts(primary.port, standby.port)} user=scramuser target_session_attrs=standby`;
      write([`127.0.0.1:${primary.port}:*:scramuser:${TEST_PASSWORD}`]);
      const leak = await attempt(conninfo, { HOME: pgpassHome });
      expect(leak.conn).toBeUndefined();
      expect(leak.error?.message.split('\n')).toEqual([
        `connection to server at "127.0.0.1", port ${primary.port} failed: server is not in hot standby mode`,
        `connection to server at "127.0.0.1", port ${standby.port} failed: fe_sendauth: no password supplied`,
      ]);

      // With a line for the standby too, it logs in; the session's state is the standby's own.
      write([
        `127.0.0.1:${primary.port}:*:scramuser:${TEST_PASSWORD}`,
        `127.0.0.1:${standby.port}:*:scramuser:${TEST_PASSWORD}`,
      ]);
      const ok = await attempt(conninfo, { HOME: pgpassHome });
      const conn = ok.conn!;
      expect(conn, ok.error?.message).toBeDefined();
      try {
        expect(conn.handshake.authMethod).toBe('password'); // not the primary's SCRAM exchange
        expect(conn.handshake.connections).toBe(1);
        expect(conn.parameters.get('in_hot_standby')).toBe('on');
        const pid = (await conn.query('select pg_backend_pid()')).rows[0]?.[0];
        expect(String(conn.backendKey?.processId)).toBe(pid); // the cancel key is the standby's
      } finally {
        await conn.close();
      }
    } finally {
      rmSync(pgpassHome, { recursive: true, force: true });
    }
  });
});

describe('load_balance_hosts', () => {
  it('random spreads 50 connections over both hosts; disable always takes the first', async () => {
    const count = async (mode: string, n: number) => {
      const seen = new Map<number, number>();
      for (let i = 0; i < n; i++) {
        const got = await attempt(
          `${hosts(primary.port, standby.port)} user=testuser load_balance_hosts=${mode}`,
        );
        const conn = got.conn!;
        expect(conn, got.error?.message).toBeDefined();
        const port = 'port' in conn.endpoint ? conn.endpoint.port : -1;
        seen.set(port, (seen.get(port) ?? 0) + 1);
        await conn.close();
      }
      return seen;
    };
    const random = await count('random', 50);
    expect((random.get(primary.port) ?? 0) + (random.get(standby.port) ?? 0)).toBe(50);
    expect(random.get(primary.port) ?? 0).toBeGreaterThanOrEqual(10);
    expect(random.get(standby.port) ?? 0).toBeGreaterThanOrEqual(10);
    expect(await count('disable', 5)).toEqual(new Map([[primary.port, 5]]));
  });
});

describe('pgconn probe (built CLI)', () => {
  it('shows every attempt of a multi-host URI and lands on the standby', async () => {
    const uri =
      `postgresql://nonexistent.invalid:1,127.0.0.1:${primary.port},127.0.0.1:${standby.port}/postgres` +
      '?target_session_attrs=standby&user=postgres';
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [cli, 'probe', uri], {
        env: { PATH: process.env.PATH ?? '', HOME: home },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => {
        stdout += d;
      });
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    const dns = at(/ BAD +nonexistent\.invalid:1 +could not translate host name "nonexistent\.invalid"/);
    const notStandby = at(
      new RegExp(` BAD +127\\.0\\.0\\.1:${primary.port} +server is not in hot standby mode`),
    );
    const standbyStarted = at(new RegExp(` STARTED +127\\.0\\.0\\.1:${standby.port} `));
    const connected = lines.indexOf(`connected to 127.0.0.1:${standby.port}`);
    expect(dns, r.stdout).toBeGreaterThanOrEqual(0);
    expect(notStandby, r.stdout).toBeGreaterThan(dns);
    expect(standbyStarted, r.stdout).toBeGreaterThan(notStandby);
    expect(connected, r.stdout).toBeGreaterThan(standbyStarted);
    expect(lines.some((l) => l.startsWith('  server version    15.'))).toBe(true);
  });
});
