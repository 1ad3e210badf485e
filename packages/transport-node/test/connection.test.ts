/**
 * The Connection after ReadyForQuery over Node, against real PostgreSQL: simple queries, COPY out and
 * in (what the bench measures as secure_read / secure_write), Unix sockets, a clean close, and no
 * handle or timer left behind.
 */
import { type Connection, ConnectionError, negotiate, ServerError } from '@pgconn/core';
import { type CertSet, createCertSet, type PgServer, startTlsPostgres } from '@pgconn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, nodeTransport } from '../src/index.ts';

let certs: CertSet;
let pg: PgServer;
let pg18: PgServer;

beforeAll(async () => {
  certs = await createCertSet();
  [pg, pg18] = await Promise.all([startTlsPostgres(15, certs), startTlsPostgres(18, certs)]);
}, 60_000);

afterAll(async () => {
  await Promise.all([pg?.stop(), pg18?.stop()]);
  await certs?.remove();
});

const open = (extra = ''): Promise<Connection> =>
  connect(`host=127.0.0.1 port=${pg.port} user=postgres dbname=postgres sslmode=require ${extra}`, {
    env: {},
  });

describe('Connection over TLS', () => {
  it('reports the session: parameters, backend key, protocol, TLS details', async () => {
    const conn = await open();
    try {
      expect(conn.parameters.get('server_version')).toMatch(/^15\./);
      expect(conn.parameters.get('client_encoding')).toBe('UTF8');
      expect(conn.backendKey?.secretKey.length).toBe(4);
      expect(conn.protocolVersion).toBe(0x30000);
      // PostgreSQL 15 predates server-side ALPN (17), so none is selected after SSLRequest.
      expect(conn.tls).toMatchObject({ protocol: 'TLSv1.3', alpnProtocol: null });
      expect(conn.tls?.peerCertificate?.length).toBeGreaterThan(100);
      const pid = await conn.query('select pg_backend_pid()');
      expect(Number(pid.rows[0]?.[0])).toBe(conn.backendKey?.processId);
    } finally {
      await conn.close();
    }
  });

  it('query(): rows as text, NULLs, the command tag, UTF-8', async () => {
    const conn = await open();
    try {
      const r = await conn.query("select 1 as one, null::text as nothing, 'héllo €' as greeting");
      expect(r.fields.map((f) => f.name)).toEqual(['one', 'nothing', 'greeting']);
      expect(r.rows).toEqual([['1', null, 'héllo €']]);
      expect(r.command).toBe('SELECT 1');
    } finally {
      await conn.close();
    }
  });

  it('a failing query throws the ServerError with SQLSTATE and the session stays usable', async () => {
    const conn = await open();
    try {
      const err = await conn.query('select 1/0').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ServerError);
      expect((err as ServerError).code).toBe('22012');
      expect((err as ServerError).message).toBe('ERROR:  division by zero');
      expect((await conn.query('select 2')).rows).toEqual([['2']]);
      expect(conn.transactionStatus).toBe('I');
    } finally {
      await conn.close();
    }
  });

  it('copyOut() streams COPY TO STDOUT (8 MB) and copyIn() streams COPY FROM STDIN back', async () => {
    const conn = await open();
    try {
      let bytes = 0;
      let rows = 0;
      const gen = conn.copyOut("copy (select repeat('x', 1000) from generate_series(1, 8000)) to stdout");
      for await (const chunk of gen) {
        bytes += chunk.length;
        rows++;
      }
      expect(rows).toBe(8000);
      expect(bytes).toBe(8000 * 1001);

      await conn.query('create temp table t (n int, s text)');
      const line = new TextEncoder().encode('1\tabc\n');
      const big = new TextEncoder().encode(`${'2\tdef\n'.repeat(20000)}`);
      const tag = await conn.copyIn('copy t from stdin', [line, big, line]);
      expect(tag).toBe('COPY 20002');
      expect((await conn.query('select count(*), sum(n) from t')).rows).toEqual([['20002', '40002']]);
    } finally {
      await conn.close();
    }
  });

  it('a COPY source that throws sends CopyFail and leaves the session usable', async () => {
    const conn = await open();
    try {
      await conn.query('create temp table t2 (n int)');
      async function* failing() {
        yield new TextEncoder().encode('1\n');
        throw new Error('source broke');
      }
      await expect(conn.copyIn('copy t2 from stdin', failing())).rejects.toThrow('source broke');
      expect((await conn.query('select count(*) from t2')).rows).toEqual([['0']]);
    } finally {
      await conn.close();
    }
  });

  it('close() is idempotent and a closed connection refuses work', async () => {
    const conn = await open();
    await conn.close();
    await conn.close();
    await expect(conn.query('select 1')).rejects.toBeInstanceOf(ConnectionError);
  });
});

describe('protocol 3.2 and cancel', () => {
  const open18 = (extra = ''): Promise<Connection> =>
    connect(`host=127.0.0.1 port=${pg18.port} user=postgres dbname=postgres sslmode=require ${extra}`, {
      env: {},
    });

  it('3.2 against PostgreSQL 18: 32-byte cancel key; 3.0 by default', async () => {
    const c32 = await open18('max_protocol_version=3.2');
    const c30 = await open18();
    try {
      expect(c32.protocolVersion).toBe(0x30002);
      expect(c32.backendKey?.secretKey.length).toBe(32);
      expect(c32.handshake.unrecognizedOptions).toEqual([]);
      expect(c30.protocolVersion).toBe(0x30000);
      expect(c30.backendKey?.secretKey.length).toBe(4);
    } finally {
      await Promise.all([c32.close(), c30.close()]);
    }
  });

  it('3.2 requested from PostgreSQL 15 negotiates down to 3.0 (NegotiateProtocolVersion)', async () => {
    const steps: string[] = [];
    const conn = await connect(
      `host=127.0.0.1 port=${pg.port} user=postgres dbname=postgres sslmode=require max_protocol_version=latest`,
      { env: {}, onStep: (s) => steps.push(s.detail) },
    );
    try {
      expect(conn.protocolVersion).toBe(0x30000);
      expect(steps).toContain('server negotiated protocol 3.0');
      expect(conn.backendKey?.secretKey.length).toBe(4);
    } finally {
      await conn.close();
    }
    await expect(
      connect(`host=127.0.0.1 port=${pg.port} user=postgres sslmode=require min_protocol_version=3.2`, {
        env: {},
      }),
    ).rejects.toThrow('server only supports protocol version 3.0, but "min_protocol_version" was set to 3.2');
  });

  it.each([
    ['PostgreSQL 15, protocol 3.0', () => open()],
    ['PostgreSQL 18, protocol 3.2', () => open18('max_protocol_version=3.2')],
  ])('cancel() stops a running pg_sleep(30) over TLS in under a second (%s)', async (_name, make) => {
    const conn = await make();
    try {
      const running = conn.query('select pg_sleep(30)');
      running.catch(() => {});
      await new Promise((r) => setTimeout(r, 200));
      const t0 = performance.now();
      await conn.cancel();
      const err = await running.catch((e: unknown) => e);
      const elapsed = performance.now() - t0;
      expect(err).toBeInstanceOf(ServerError);
      expect((err as ServerError).code).toBe('57014');
      expect((err as ServerError).message).toBe('ERROR:  canceling statement due to user request');
      expect(elapsed).toBeLessThan(1000);
      expect((await conn.query('select 1')).rows).toEqual([['1']]);
    } finally {
      await conn.close();
    }
  });
});

describe('Unix-domain socket', () => {
  it('connects over the socket (sslmode ignored, as libpq does)', async () => {
    const conn = await connect(
      `host=${pg.socketDir} port=${pg.port} user=postgres dbname=postgres sslmode=prefer`,
      {
        env: {},
      },
    );
    try {
      expect(conn.tls).toBeNull();
      expect('path' in conn.endpoint && conn.endpoint.path).toBe(`${pg.socketDir}/.s.PGSQL.${pg.port}`);
      expect((await conn.query('select 1')).rows).toEqual([['1']]);
    } finally {
      await conn.close();
    }
  });
});

describe('resources', () => {
  const count = () =>
    process
      .getActiveResourcesInfo()
      .filter((r) => r === 'TCPWrap' || r === 'TLSWrap' || r === 'PipeWrap' || r === 'Timeout').length;

  it('leaves no socket or timer behind after 30 connect/query/close cycles (plain, TLS, failures)', async () => {
    const before = count();
    for (let i = 0; i < 10; i++) {
      const a = await open('connect_timeout=5');
      await a.query('select 1');
      await a.close();
      const b = await open('sslmode=disable connect_timeout=5');
      await b.close();
      await expect(
        negotiate(
          nodeTransport,
          { host: '127.0.0.1', port: pg.port },
          { host: 'x', user: 'nossl-nobody', sslmode: 'require' },
          { connectTimeout: 5 },
        ),
      ).rejects.toBeInstanceOf(ServerError);
    }
    // Closed sockets are released on the next turns of the event loop.
    await new Promise((r) => setTimeout(r, 50));
    expect(count()).toBeLessThanOrEqual(before);
  });
});
