/**
 * Runs test/smoke.ts under Deno (node_modules/.bin/deno, from the `deno` devDependency) against
 * PostgreSQL 15 and 18 started here, and checks every line it prints: each case must end with the
 * status in EXPECTED, an unsupported one with the reason given. Deno gets only the permissions the
 * smoke test needs: loopback TCP, the two Unix sockets, the certificate directory, and `sys` (node:tls'
 * getCACertificates('system') for sslrootcert=system asks for it; no narrower grant exists).
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type CertSet,
  CLIENT_KEY_PASSPHRASE,
  createCertSet,
  type PgServer,
  startTlsPostgres,
  TEST_PASSWORD,
} from '@pgconn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const DENO = fileURLToPath(new URL('../../../node_modules/.bin/deno', import.meta.url));
const SMOKE = fileURLToPath(new URL('./smoke.ts', import.meta.url));

type Expected = 'PASS' | { unsupported: RegExp };

const perServer = (v: 15 | 18): Record<string, Expected> => ({
  [`pg${v} sslmode=disable`]: 'PASS',
  [`pg${v} unix socket`]: 'PASS',
  [`pg${v} sslmode=require`]: 'PASS',
  [`pg${v} sslmode=verify-full`]: 'PASS',
  [`pg${v} verify-full host name mismatch`]: 'PASS',
  [`pg${v} verify-ca with a foreign root`]: 'PASS',
  [`pg${v} SCRAM-SHA-256-PLUS`]: 'PASS',
  [`pg${v} client certificate`]: 'PASS',
});

/** Every case smoke.ts runs, and how it must end. */
const EXPECTED: Record<string, Expected> = {
  ...perServer(15),
  ...perServer(18),
  'pg18 direct TLS (sslnegotiation=direct)': 'PASS',
  'pg18 direct TLS + SCRAM-SHA-256-PLUS': 'PASS',
  'pg15 direct TLS refused (no ALPN before 17)': 'PASS',
  'pg15 SCRAM-SHA-256 (plaintext)': 'PASS',
  'pg15 ~/.pgpass (0600 used; 0644 and a directory ignored with warnings; none)': 'PASS',
  'pg15 client certificate, encrypted PEM key (sslpassword)': 'PASS',
  'pg15 client certificate, DER key': 'PASS',
  'pg15 client certificate, encrypted DER key (sslpassword)': 'PASS',
  'pg15 client certificate, wrong sslpassword': 'PASS',
  'pg15 client certificate, encrypted DER key with a wrong sslpassword': 'PASS',
  'pg15 client certificate, key of another certificate': 'PASS',
  'pg15 cert auth without a certificate': 'PASS',
  'pg15 sslmode=prefer falls back to plaintext (hostnossl)': 'PASS',
  'pg15 sslrootcert=system (test CA not in the system store)': 'PASS',
  'pg15 client certificate from an unknown CA': 'PASS',
  'pg15 revoked client certificate': 'PASS',
  'pg15 sslcrl (certificate revocation list)': {
    unsupported:
      /UnsupportedError: .*certificate revocation lists \(sslcrl, sslcrldir\) are not supported on Deno/,
  },
  'pg15 ssl_max_protocol_version=TLSv1.1': {
    unsupported: /UnsupportedError: .*ssl_max_protocol_version=TLSv1\.1 is not supported on Deno/,
  },
  'pg15 ssl_max_protocol_version=TLSv1.2': 'PASS',
  'pg15 20 MB result over TLS': 'PASS',
  'pg15 COPY in and out over TLS': 'PASS',
  'pg15 cancel over TLS': 'PASS',
  'deno server, STARTTLS + SCRAM-SHA-256-PLUS': 'PASS',
  'deno server, direct TLS (ALPN postgresql)': 'PASS',
  'deno server, plaintext SCRAM-SHA-256': 'PASS',
  'deno server, client certificate authentication': {
    unsupported:
      /UnsupportedError: client certificate verification on the server side is not supported on Deno: its node:tls server does not verify client certificate chains/,
  },
};

let certs: CertSet;
const servers: PgServer[] = [];
/** Case name → [status, detail] as printed by smoke.ts. */
const results = new Map<string, [string, string]>();
let output = { code: -1 as number | null, stdout: '', stderr: '' };

function runDeno(args: string[]): Promise<typeof output> {
  return new Promise((resolve) => {
    execFile(
      DENO,
      args,
      {
        timeout: 120_000,
        maxBuffer: 16 * 1024 * 1024,
        env: { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' },
      },
      (error, stdout, stderr) => {
        const code = error ? ((error as { code?: unknown }).code as number | null) : 0;
        resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
      },
    );
  });
}

beforeAll(async () => {
  certs = await createCertSet();
  const [pg15, pg18, certuser] = await Promise.all([
    startTlsPostgres(15, certs),
    startTlsPostgres(18, certs),
    certs.clientCert('certuser'),
  ]);
  servers.push(pg15, pg18);
  const sockets = servers.map((s) => `${s.socketDir}/.s.PGSQL.${s.port}`);
  // Under the certificate directory, which Deno may read.
  const homes = { pgpass600: '', pgpass644: '', empty: '', pgpassDir: '' };
  for (const [name, mode] of [
    ['pgpass600', 0o600],
    ['pgpass644', 0o644],
    ['empty', 0],
    ['pgpassDir', 0],
  ] as const) {
    homes[name] = join(certs.dir, `home-${name}`);
    mkdirSync(homes[name]);
    if (name === 'pgpassDir') mkdirSync(join(homes[name], '.pgpass'));
    if (mode === 0) continue;
    writeFileSync(join(homes[name], '.pgpass'), `127.0.0.1:${pg15.port}:*:scramuser:${TEST_PASSWORD}\n`);
    chmodSync(join(homes[name], '.pgpass'), mode);
  }
  const env = {
    pg15: { port: pg15.port, socketDir: pg15.socketDir },
    pg18: { port: pg18.port, socketDir: pg18.socketDir },
    homes,
    certs: {
      rootServerCa: certs.bundles.rootServerCa,
      wrongCa: certs.ca.wrong.cert,
      rootServerCrl: certs.crl.rootServer,
      certuser: { cert: certuser.cert, key: certuser.key },
      ssltestuser: {
        cert: certs.client.client.cert,
        encryptedKey: certs.clientKeys.encryptedPem.path,
        passphrase: CLIENT_KEY_PASSPHRASE,
        derKey: certs.clientKeys.der,
        encryptedDerKey: certs.clientKeys.encryptedDer.path,
      },
      wrongCaClient: { cert: certs.client.wrongCa.cert, key: certs.client.wrongCa.key },
      revokedClient: { cert: certs.client.revoked.cert, key: certs.client.revoked.key },
      serverLocalhost: { cert: certs.server.localhost.cert, key: certs.server.localhost.key },
      rootClientCa: certs.bundles.rootClientCa,
    },
  };
  output = await runDeno([
    'run',
    `--allow-net=127.0.0.1,${sockets.map((s) => `unix:${s}`).join(',')}`,
    `--allow-read=${[certs.dir, ...sockets].join(',')}`,
    `--allow-write=${sockets.join(',')}`,
    '--allow-sys',
    SMOKE,
    JSON.stringify(env),
  ]);
  for (const line of output.stdout.split('\n')) {
    const m = /^(PASS|UNSUPPORTED|FAIL) (.*?): (.*)$/.exec(line);
    if (m) results.set(m[2]!, [m[1]!, m[3]!]);
  }
}, 180_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await certs?.remove();
});

describe('Deno smoke test (test/smoke.ts under deno run)', () => {
  it('ran to the end with every case accounted for', () => {
    expect(output.stdout, output.stderr).toContain('DONE ok');
    expect(output.code, output.stderr).toBe(0);
    expect([...results.keys()].sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(Object.entries(EXPECTED))('%s', (name, expected) => {
    const got = results.get(name);
    expect(got, `no line for "${name}"\n${output.stdout}\n${output.stderr}`).toBeDefined();
    const [status, detail] = got!;
    if (expected === 'PASS') {
      expect(`${status}: ${detail}`).toBe(`PASS: ${detail}`);
    } else {
      expect(status, detail).toBe('UNSUPPORTED');
      expect(detail).toMatch(expected.unsupported);
    }
  });
});
