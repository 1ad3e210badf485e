/** `pgconn probe` as users run it: the built CLI against a real PostgreSQL 18 with TLS and SCRAM. */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CertSet, createCertSet, type PgServer, startTlsPostgres, TEST_PASSWORD } from '@pgconn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url));

function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: '/nonexistent', ...env },
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
}

let certs: CertSet;
let pg: PgServer;
let home: string;
let common: string;

beforeAll(async () => {
  certs = await createCertSet();
  pg = await startTlsPostgres(18, certs);
  common = `hostaddr=127.0.0.1 port=${pg.port} user=scramuser dbname=postgres sslrootcert=${certs.bundles.rootServerCa}`;
  home = mkdtempSync(join(tmpdir(), 'pgconn-home-'));
}, 60_000);

afterAll(async () => {
  await pg?.stop();
  await certs?.remove();
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('pgconn probe', () => {
  it('prints the negotiation step by step and exits 0 (verify-full, SCRAM-PLUS)', async () => {
    const r = await run(['probe', `host=localhost sslmode=verify-full ${common}`], {
      PGPASSWORD: TEST_PASSWORD,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const state of [
      'STARTED',
      'MADE',
      'SSL_STARTUP',
      'SSL_HANDSHAKE',
      'AWAITING_RESPONSE',
      'AUTH_OK',
      'OK',
    ]) {
      expect(r.stdout).toMatch(new RegExp(`ms  ${state} `));
    }
    expect(r.stdout).toMatch(/encryption {8}SSL \(TLSv1\.3, .+, ALPN postgresql\)/);
    expect(r.stdout).toContain('authentication    SCRAM-SHA-256-PLUS');
    expect(r.stdout).toContain('protocol          3.0');
    expect(r.stdout).toContain('server version    18.4');
    expect(r.stdout).not.toContain(TEST_PASSWORD);
  });

  it('--json prints one JSON document', async () => {
    const r = await run(
      ['probe', '--json', `host=localhost sslmode=verify-full max_protocol_version=3.2 ${common}`],
      {
        PGPASSWORD: TEST_PASSWORD,
      },
    );
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.ok).toBe(true);
    expect(doc.result).toMatchObject({
      encryption: 'SSL',
      authMethod: 'SCRAM-SHA-256-PLUS',
      protocolVersion: '3.2',
    });
    expect(doc.steps.at(-1).state).toBe('OK');
  });

  it('exits 1 with libpq wording for a wrong host name under verify-full', async () => {
    const r = await run(['probe', `host=wrong.example sslmode=verify-full ${common}`], {
      PGPASSWORD: TEST_PASSWORD,
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `pgconn: error: connection to server at "127.0.0.1", port ${pg.port} failed: server certificate for "localhost" (and 2 other names) does not match host name "wrong.example"\n`,
    );
  });

  it('exits 1 with the server error for a wrong password, which is never printed', async () => {
    const r = await run(['probe', `host=localhost sslmode=require ${common}`], {
      PGPASSWORD: 'not-the-password',
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('FATAL:  password authentication failed for user "scramuser"');
    expect(r.stdout + r.stderr).not.toContain('not-the-password');
  });

  it('exits 2 for invalid options', async () => {
    expect((await run(['probe', 'host=x sslmode=bogus'])).code).toBe(2);
    expect((await run(['probe', 'postgresql://h/d?nope=1'])).stderr).toContain(
      'invalid URI query parameter: "nope"',
    );
    expect((await run(['probe', '--bogus'])).code).toBe(2);
    expect((await run(['nope'])).code).toBe(2);
  });

  it('reads PG* environment variables and .pgpass when no argument is given', async () => {
    const pgpass = join(home, '.pgpass');
    writeFileSync(pgpass, `127.0.0.1:${pg.port}:postgres:scramuser:${TEST_PASSWORD}\n`);
    chmodSync(pgpass, 0o600);
    const r = await run(['probe', '--json'], {
      HOME: home,
      PGHOST: '127.0.0.1',
      PGPORT: String(pg.port),
      PGUSER: 'scramuser',
      PGDATABASE: 'postgres',
      PGSSLMODE: 'require',
      PGCHANNELBINDING: 'disable',
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).result).toMatchObject({ encryption: 'SSL', authMethod: 'SCRAM-SHA-256' });
  });
});
