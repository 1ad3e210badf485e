/**
 * `pgconn serve` after startup, in raw protocol bytes (trust, no TLS): simple queries with several
 * statements, empty queries, errors and transaction status, COPY sink failure, the extended
 * protocol refused until Sync; shutdown on SIGTERM/SIGINT; option errors (exit 2).
 */
import { connect } from '@pgconn/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cli,
  cstr,
  errorFields,
  eventually,
  type Message,
  noticeFields,
  rawConnect,
  rawSession,
  type Served,
  serve,
  stopAllServers,
  typed,
} from './serve-harness.ts';

let trust: Served;

beforeAll(async () => {
  trust = await serve(['--auth', 'trust', '--tls', 'off']);
}, 30_000);

afterAll(async () => {
  await stopAllServers();
});

const query = (sql: string) => typed('Q', cstr(sql));
const types = (ms: Message[]) => ms.map((m) => m.type).join('');
const status = (ms: Message[]) => String.fromCharCode(ms[ms.length - 1]!.body[0]!);
const tags = (ms: Message[]) =>
  ms.filter((m) => m.type === 'C').map((m) => m.body.subarray(0, -1).toString());

describe('a session in raw bytes', () => {
  it('startup with trust: AuthenticationOk, ParameterStatus…, BackendKeyData, ReadyForQuery(I)', async () => {
    const s = await rawSession(trust.port);
    expect(types(s.startup)).toMatch(/^RS+KZ$/);
    expect(status(s.startup)).toBe('I');
    s.peer.socket.destroy();
  });

  it('several statements in one Query, an empty query, literals and settings', async () => {
    const s = await rawSession(trust.port);
    const r = await s.exchange(query("select 1; select 'it''s' as t, true, null; show server_version"));
    expect(types(r)).toBe('TDCTDCTDCZ');
    expect(tags(r)).toEqual(['SELECT 1', 'SELECT 1', 'SHOW']);
    expect(types(await s.exchange(query(' ;; -- nothing\n')))).toBe('IZ');
    const set = await s.exchange(query("set application_name = 'bench'; show application_name"));
    expect(types(set)).toBe('CSTDCZ'); // SET reports the new value in a ParameterStatus
    expect(set[1]!.body.toString()).toBe('application_name\0bench\0');
    s.peer.socket.destroy();
  });

  it('errors: unknown query → ErrorResponse and the rest skipped; transaction status I/T/E', async () => {
    const s = await rawSession(trust.port);
    const r = await s.exchange(query('select nonsense from t; select 1'));
    expect(types(r)).toBe('EZ');
    expect(noticeFields(r[0]!.body)).toMatchObject({
      S: 'ERROR',
      C: '0A000',
    });
    expect(status(r)).toBe('I');
    expect(status(await s.exchange(query('begin')))).toBe('T');
    expect(status(await s.exchange(query('select 1')))).toBe('T');
    expect(status(await s.exchange(query('select nonsense from t')))).toBe('E');
    const aborted = await s.exchange(query('select 1'));
    expect(types(aborted)).toBe('EZ');
    expect(noticeFields(aborted[0]!.body).C).toBe('25P02');
    const commit = await s.exchange(query('commit'));
    expect(tags(commit)).toEqual(['ROLLBACK']);
    expect(status(commit)).toBe('I');
    s.peer.socket.destroy();
  });

  it('COPY sink: CopyFail → 57014 "COPY from stdin failed: <message>"; COPY counts rows', async () => {
    const s = await rawSession(trust.port);
    s.peer.socket.write(query('copy t from stdin'));
    await s.peer.bytes(s.peer.received().length + 1);
    const failed = await s.exchange(typed('d', Buffer.from('a\nb\n')), typed('f', cstr('boom')));
    expect(types(failed)).toBe('GEZ');
    expect(noticeFields(failed[1]!.body)).toMatchObject({
      S: 'ERROR',
      C: '57014',
      M: 'COPY from stdin failed: boom',
    });
    s.peer.socket.write(query('copy t from stdin'));
    const done = await s.exchange(typed('d', Buffer.from('a\nb\nc')), typed('c'));
    expect(tags(done)).toEqual(['COPY 3']);
    s.peer.socket.destroy();
  });

  it('the extended protocol is refused with 0A000 and skipped until Sync', async () => {
    const s = await rawSession(trust.port);
    const parse = typed('P', Buffer.concat([cstr(''), cstr('select 1'), Buffer.alloc(2)]));
    const bind = typed('B', Buffer.concat([cstr(''), cstr(''), Buffer.alloc(6)]));
    const execute = typed('E', Buffer.concat([cstr(''), Buffer.alloc(4)]));
    // Everything up to Sync is skipped after the first error, a simple Query included.
    const r = await s.exchange(parse, bind, execute, query('select 1'), typed('S'));
    expect(types(r)).toBe('EZ');
    expect(noticeFields(r[0]!.body).C).toBe('0A000');
    // The session still answers simple queries.
    expect(tags(await s.exchange(query('select 1')))).toEqual(['SELECT 1']);
    s.peer.socket.destroy();
  });

  it('Terminate ends the session', async () => {
    const s = await rawSession(trust.port);
    s.peer.socket.write(typed('X'));
    expect(await s.peer.closed()).toBeLessThan(2000);
  });
});

describe('the log', () => {
  it('has one line per connection event and never the password', async () => {
    const secret = 'Sekr1t-cleartext';
    const server = await serve([
      '--auth',
      'password',
      '--tls',
      'off',
      '--user',
      'alice',
      '--password',
      secret,
    ]);
    const conninfo = `host=127.0.0.1 port=${server.port} user=alice sslmode=disable`;
    const conn = await connect(`${conninfo} password=${secret}`, { env: {} });
    expect((await conn.query('select current_user')).rows).toEqual([['alice']]);
    await conn.close();
    await expect(connect(`${conninfo} password=not-${secret}`, { env: {} })).rejects.toThrow(
      'password authentication failed for user "alice"',
    );
    await eventually(() => /closed \(auth-failed\)/.test(server.log()));
    await eventually(() => /session ended \(Terminate; 1 query\)/.test(server.log()));
    const log = server.log();
    expect(log).toMatch(/session started: user=alice database=alice auth=password no encryption pid=\d+/);
    expect(log).toMatch(/:\d+ AUTHENTICATING: asking the auth provider$/m); // --log steps, the default
    expect(log).not.toContain(secret);
    expect(server.stdout()).not.toContain(secret);
    for (const line of log.trimEnd().split('\n')) expect(line).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z \S/);
    await server.stop();
  }, 20_000);

  it('--log connections: a line when a session starts, ends or is refused, none per step', async () => {
    const server = await serve([
      '--auth',
      'trust',
      '--tls',
      'off',
      '--user',
      'alice',
      '--log',
      'connections',
    ]);
    const conninfo = `host=127.0.0.1 port=${server.port} sslmode=disable`;
    const conn = await connect(`${conninfo} user=alice`, { env: {} });
    await conn.close();
    await expect(connect(`${conninfo} user=bob`, { env: {} })).rejects.toThrow('role "bob" does not exist');
    await eventually(() => /closed \(rejected\): role "bob" does not exist/.test(server.log()));
    await eventually(() => /session ended \(Terminate; 0 queries\)/.test(server.log()));
    const lines = server
      .log()
      .trimEnd()
      .split('\n')
      .filter((l) => / \[\d+\] /.test(l));
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/\[1\] 127\.0\.0\.1:\d+ session started: user=alice database=alice auth=trust /);
    expect(lines[1]).toMatch(/\[1\] 127\.0\.0\.1:\d+ session ended \(Terminate; 0 queries\)$/);
    expect(lines[2]).toMatch(/\[2\] 127\.0\.0\.1:\d+ closed \(rejected\): role "bob" does not exist$/);
    expect(server.log()).toContain(' log=connections ');
    await server.stop();
  }, 20_000);
});

describe('shutdown', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    '%s: FATAL 57P01 to sessions, listener closed, exit 0',
    async (signal) => {
      const server = await serve(['--auth', 'trust', '--tls', 'off']);
      const s = await rawSession(server.port);
      const status = await server.stop(signal);
      expect(status).toEqual({ code: 0, signal: null });
      await s.peer.closed();
      const fatal = s.peer.received().subarray(s.peer.received().lastIndexOf(0x45));
      expect(errorFields(fatal)).toMatchObject({
        S: 'FATAL',
        C: '57P01',
        M: 'terminating connection due to administrator command',
      });
      await expect(rawConnect(server.port)).rejects.toThrow(/ECONNREFUSED/);
      expect(server.log()).toContain(`received ${signal}: shutting down`);
    },
    20_000,
  );
});

describe('options', () => {
  it.each([
    [['--tls', 'bogus']],
    [['--tls', 'required']],
    [['--port', '70000']],
    [['--port']],
    [['--auth', 'gss']],
    [['--direct-tls']],
    [['--tls-cert', '/tmp/x.crt']],
    [['--tls-dir', '/tmp/d', '--tls-cert', '/tmp/x.crt', '--tls-key', '/tmp/x.key']],
    [['--runtime', 'python']],
    // Run again under Bun and Deno, which refuse the port: their exit status comes back.
    [['--runtime', 'bun', '--port', '70000']],
    [['--runtime', 'deno', '--port', '70000']],
    [['--auth-timeout', '0']],
    [['--log', 'verbose']],
    [['--bogus']],
    [['extra']],
  ])('serve %j exits 2', async (args) => {
    const r = await cli(['serve', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^pgconn: /);
    expect(r.stdout).toBe('');
  });

  it('an unusable certificate file exits 1', async () => {
    const r = await cli([
      'serve',
      '--port',
      '0',
      '--tls-cert',
      '/nonexistent.crt',
      '--tls-key',
      '/nonexistent.key',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('could not load server certificate file "/nonexistent.crt"');
  });
});
