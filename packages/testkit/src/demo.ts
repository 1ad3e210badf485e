/**
 * `npm run demo`: starts a throwaway PostgreSQL 18 with TLS and SCRAM (binaries from npm, certificates
 * generated on the spot), then runs the real `pgconn probe` against it twice: with verify-full and the
 * right host name (exit 0, full trace), and with a wrong host name (exit 1, libpq's error).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createCertSet } from './certs.ts';
import { startTlsPostgres, TEST_PASSWORD } from './postgres.ts';

const bin = fileURLToPath(new URL('../../cli/dist/bin.js', import.meta.url));

function probe(conninfo: string): number {
  console.log(`\n$ PGPASSWORD=*** pgconn probe "${conninfo}"`);
  // Only our variables: a developer's PG* settings must not change what the demo shows.
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: '/nonexistent',
    PGPASSWORD: TEST_PASSWORD,
  };
  const r = spawnSync(process.execPath, [bin, 'probe', conninfo], { stdio: 'inherit', env });
  console.log(`(exit code ${r.status})`);
  return r.status ?? 1;
}

async function main(): Promise<number> {
  const certs = await createCertSet();
  const pg = await startTlsPostgres(18, certs);
  try {
    console.log(
      `PostgreSQL ${pg.serverVersion} on 127.0.0.1:${pg.port}: TLS with a generated CA, SCRAM-SHA-256 for "scramuser"`,
    );
    const common = `hostaddr=127.0.0.1 port=${pg.port} user=scramuser dbname=postgres sslmode=verify-full sslrootcert=${certs.bundles.rootServerCa}`;
    const ok = probe(`host=localhost ${common}`);
    const wrong = probe(`host=wrong.example ${common}`);
    return ok === 0 && wrong === 1 ? 0 : 1;
  } finally {
    await pg.stop();
    await certs.remove();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(e);
    process.exitCode = 1;
  },
);
