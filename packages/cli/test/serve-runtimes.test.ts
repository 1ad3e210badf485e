/**
 * `pgconn serve --runtime bun|deno` and `pgconn probe --runtime …`: started from Node, the CLI runs
 * itself again on the other runtime with that runtime's transport (Bun.listen, Deno.listen). Real
 * clients against it: psql with libpq 18 (SSLRequest and direct TLS) and pgconn probe on all three
 * runtimes; SIGTERM to the Node parent reaches the server, which shuts down cleanly.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PSQL, pgInstall } from '@pgconn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cli, run, type Served, serve, stopAllServers, tempDir } from './serve-harness.ts';

const dir = tempDir('pgconn-serve-runtimes-');

afterAll(async () => {
  await stopAllServers();
  dir.remove();
});

describe.each(['bun', 'deno'] as const)('pgconn serve --runtime %s', (runtime) => {
  const certs = join(dir.path, runtime);
  const ca = join(certs, 'ca.crt');
  let server: Served;

  beforeAll(async () => {
    server = await serve(['--runtime', runtime, '--tls-dir', certs, '--direct-tls']);
  }, 60_000);
  const conninfo = () =>
    `host=localhost port=${server.port} user=postgres password=postgres sslmode=verify-full ` +
    `sslrootcert=${ca} sslnegotiation=direct channel_binding=require`;

  it('runs on that runtime', () => {
    expect(server.log()).toMatch(new RegExp(`runtime=${runtime} \\d+\\.\\d+`));
  });

  it.each([
    ['postgres', 'SSLRequest'],
    ['direct', 'direct TLS'],
  ])('psql (libpq 18), sslnegotiation=%s: verify-full, SCRAM-SHA-256-PLUS, a query', async (negotiation) => {
    const r = await run(
      PSQL,
      [
        '-X',
        '-At',
        '-c',
        'select 1',
        '-d',
        `host=localhost port=${server.port} user=postgres sslmode=verify-full sslrootcert=${ca} ` +
          `sslnegotiation=${negotiation} channel_binding=require connect_timeout=10`,
      ],
      { PATH: '/usr/bin:/bin', HOME: dir.path, PGPASSWORD: 'postgres', LD_LIBRARY_PATH: pgInstall(18).lib },
    );
    expect(r.stderr).toBe('');
    expect([r.code, r.stdout]).toEqual([0, '1\n']);
  });

  it.each(['node', 'bun', 'deno'] as const)(
    'pgconn probe --runtime %s connects with direct TLS and SCRAM-SHA-256-PLUS',
    async (client) => {
      const r = await cli([
        'probe',
        '--json',
        '--runtime',
        client,
        `host=localhost port=${server.port} user=postgres password=postgres sslmode=verify-full ` +
          `sslrootcert=${ca} sslnegotiation=direct channel_binding=require`,
      ]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const report = JSON.parse(r.stdout) as {
        ok: boolean;
        runtime: string;
        result: Record<string, unknown>;
      };
      expect(report.ok).toBe(true);
      expect(report.runtime).toMatch(new RegExp(`^${client} \\d+\\.\\d+`));
      expect(report.result).toMatchObject({ encryption: 'SSL (direct)', authMethod: 'SCRAM-SHA-256-PLUS' });
    },
    30_000,
  );

  it(`${runtime} running the CLI itself (no --runtime) stays on ${runtime}`, async () => {
    const bin = fileURLToPath(new URL(`../../../node_modules/.bin/${runtime}`, import.meta.url));
    const r = await run(
      bin,
      [...(runtime === 'deno' ? ['run', '-A'] : []), BIN, 'probe', '--json', conninfo()],
      {
        PATH: process.env.PATH ?? '',
        HOME: '/nonexistent',
      },
    );
    expect(r.stderr).toBe('');
    expect((JSON.parse(r.stdout) as { runtime: string }).runtime).toMatch(new RegExp(`^${runtime} `));
  }, 30_000);

  it('SIGTERM to the Node parent stops the server: exit 0, "shut down" logged', async () => {
    const status = await server.stop('SIGTERM');
    expect(status).toEqual({ code: 0, signal: null });
    expect(server.log()).toMatch(/received SIGTERM: shutting down\n.*shut down\n/);
  });
});
