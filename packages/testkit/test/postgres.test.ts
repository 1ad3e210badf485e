import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CertSet,
  createCertSet,
  hbaLine,
  type PgServer,
  type PgVersion,
  startPostgres,
  startTlsPostgres,
  TEST_PASSWORD,
} from '../src/index.ts';

const execFileAsync = promisify(execFile);

/** Live (non-zombie) processes among `pids`. */
function alive(pids: readonly number[]): number[] {
  return pids.filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  });
}

async function pgrep(...args: string[]): Promise<number[]> {
  try {
    const { stdout } = await execFileAsync('pgrep', args, { encoding: 'utf8' });
    return stdout.split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // exit 1: no match
  }
}

const serverUser = process.getuid?.() === 0 ? 'postgres' : String(process.getuid?.());

let certs: CertSet;
const servers = new Map<PgVersion, PgServer>();
const started: PgServer[] = [];

beforeAll(async () => {
  certs = await createCertSet();
  await certs.clientCert('certuser');
  const t0 = performance.now();
  const [pg15, pg18] = await Promise.all([startTlsPostgres(15, certs), startTlsPostgres(18, certs)]);
  console.log(`startTlsPostgres 15 + 18 in parallel: ${(performance.now() - t0).toFixed(0)} ms`);
  servers.set(15, pg15);
  servers.set(18, pg18);
  started.push(pg15, pg18);
}, 60_000);

afterAll(async () => {
  await Promise.all(started.map((s) => s.stop()));
  await certs?.remove();
});

describe.each([15, 18] as const)('PostgreSQL %i with TLS', (version) => {
  const pg = () => servers.get(version) as PgServer;
  const tls = (extra: Record<string, string> = {}) => ({ PGSSLMODE: 'require', ...extra });

  it('runs SQL over the Unix socket', async () => {
    expect(await pg().sql('select version()')).toMatch(new RegExp(`^PostgreSQL ${version}\\.`));
    expect(pg().serverVersion).toMatch(new RegExp(`^${version}\\.`));
    expect(await pg().sql('select ssl from pg_stat_ssl where pid = pg_backend_pid()')).toBe('f');
  });

  it('speaks TLS over TCP with sslmode=require', async () => {
    const q = 'select ssl, version from pg_stat_ssl where pid = pg_backend_pid()';
    expect(await pg().sql(q, { tcp: true, env: tls() })).toMatch(/^t\|TLSv1\.[23]$/);
  });

  it('verifies the localhost certificate with verify-full', async () => {
    const env = tls({ PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.bundles.rootServerCa });
    expect(await pg().sql('select 1', { tcp: true, env })).toBe('1');
    const wrong = await pg().psql(['-c', 'select 1'], {
      tcp: true,
      env: { ...env, PGSSLROOTCERT: certs.bundles.rootClientCa },
    });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain('certificate verify failed');
  });

  it('applies the hostssl / hostnossl lines of the default table', async () => {
    const plain = { PGSSLMODE: 'disable' };
    expect(await pg().sql('select current_user', { tcp: true, user: 'testuser', env: plain })).toBe(
      'testuser',
    );
    expect(await pg().sql('select current_user', { tcp: true, user: 'ssluser', env: tls() })).toBe('ssluser');
    const noSsl = await pg().psql(['-c', 'select 1'], { tcp: true, user: 'ssluser', env: plain });
    expect(noSsl.stderr).toContain('no pg_hba.conf entry for host "127.0.0.1", user "ssluser"');
    expect(await pg().sql('select current_user', { tcp: true, user: 'nossluser', env: plain })).toBe(
      'nossluser',
    );
    const withSsl = await pg().psql(['-c', 'select 1'], { tcp: true, user: 'nossluser', env: tls() });
    expect(withSsl.stderr).toContain('no pg_hba.conf entry');
  });

  it('authenticates the password users', async () => {
    for (const user of ['scramuser', 'md5user', 'passworduser']) {
      expect(
        await pg().sql('select current_user', { tcp: true, user, password: TEST_PASSWORD, env: tls() }),
      ).toBe(user);
    }
    const stored = await pg().sql(
      "select rolname || ':' || left(rolpassword, 3) from pg_authid where rolname in ('scramuser', 'md5user') order by 1",
    );
    expect(stored.split('\n')).toEqual(['md5user:md5', 'scramuser:SCR']);
    const bad = await pg().psql(['-c', 'select 1'], {
      tcp: true,
      user: 'scramuser',
      password: 'nope',
      env: tls(),
    });
    expect(bad.stderr).toContain('password authentication failed for user "scramuser"');
  });

  it('authenticates client certificates', async () => {
    const cu = await certs.clientCert('certuser');
    const env = (cert: string, key: string) => tls({ PGSSLCERT: cert, PGSSLKEY: key });
    const ok = await pg().sql(
      'select current_user, client_dn from pg_stat_ssl where pid = pg_backend_pid()',
      {
        tcp: true,
        user: 'certuser',
        env: env(cu.cert, cu.key),
      },
    );
    expect(ok).toBe('certuser|/CN=certuser');
    const c = certs.client.client;
    expect(await pg().sql('select 1', { tcp: true, user: 'ssltestuser', env: env(c.cert, c.key) })).toBe('1');
    const mismatch = await pg().psql(['-c', 'select 1'], {
      tcp: true,
      user: 'anotheruser',
      env: env(c.cert, c.key),
    });
    expect(mismatch.stderr).toContain('certificate authentication failed for user "anotheruser"');
    const r = certs.client.revoked;
    const revoked = await pg().psql(['-c', 'select 1'], {
      tcp: true,
      user: 'ssltestuser',
      env: env(r.cert, r.key),
    });
    // The server's TLS alert; PostgreSQL 16+ also logs "…verification failed at depth 0: certificate revoked".
    expect(revoked.stderr).toContain('alert certificate revoked');
  });
});

describe('startPostgres', () => {
  it('works without TLS, with custom hba lines and md5 users, and reloads hba', async () => {
    const pg = await startPostgres({
      version: 18,
      users: [{ name: 'alice', password: 'pw', passwordEncryption: 'md5' }],
      databases: ['appdb'],
      hba: [hbaLine('host', 'alice', 'md5', { database: 'appdb' })],
      settings: { work_mem: '7MB' },
    });
    started.push(pg);
    expect(await pg.sql('show ssl')).toBe('off');
    expect(await pg.sql('show work_mem')).toBe('7MB');
    const as = { tcp: true, user: 'alice', password: 'pw', database: 'appdb' };
    expect(await pg.sql('select current_database()', as)).toBe('appdb');
    const tlsRequired = await pg.psql(['-c', 'select 1'], { ...as, env: { PGSSLMODE: 'require' } });
    expect(tlsRequired.stderr).toContain('server does not support SSL');
    await pg.setHba([hbaLine('host', 'alice', 'reject')]);
    const rejected = await pg.psql(['-c', 'select 1'], as);
    expect(rejected.stderr).toContain('rejects connection');
    await pg.stop();
  }, 30_000);

  it('starts with an encrypted server key and lets psql load libpq 18 (direct TLS)', async () => {
    const pg = await startTlsPostgres(18, certs, { encryptedKey: true });
    started.push(pg);
    const env = { PGSSLMODE: 'require', PGSSLNEGOTIATION: 'direct' };
    const q = 'select ssl from pg_stat_ssl where pid = pg_backend_pid()';
    expect(await pg.sql(q, { tcp: true, libpq: '18', env })).toBe('t');
    await pg.stop();
  }, 30_000);

  it('stop() leaves no process and no directory behind, and is idempotent', async () => {
    const pg = await startPostgres({ version: 15 });
    started.push(pg);
    const children = await pgrep('-P', String(pg.pid));
    expect(children.length).toBeGreaterThan(2);
    // -u: the watchdog (a root shell) has the data directory in its command line too.
    expect(await pgrep('-u', serverUser, '-f', pg.dataDir)).toEqual([pg.pid]);
    await Promise.all([pg.stop(), pg.stop()]);
    await pg.stop();
    expect(alive([pg.pid, ...children])).toEqual([]);
    expect(await pgrep('-f', pg.dataDir)).toEqual([]); // watchdog included
    expect(existsSync(pg.dir)).toBe(false);
    expect(pg.log()).toContain('database system is shut down');
  }, 30_000);
});
