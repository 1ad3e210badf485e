/**
 * PgServer.setServerCert: switching the server certificate of a running TLS server (ALTER SYSTEM +
 * pg_reload_conf), and servedCertificate, which reads back the leaf a server presents.
 */
import { X509Certificate } from 'node:crypto';
import { statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CertSet,
  createCertSet,
  type IssuedCert,
  type PgServer,
  servedCertificate,
  startPostgres,
  startTlsPostgres,
} from '../src/index.ts';

const der = (c: IssuedCert): Buffer => new X509Certificate(c.certPem).raw;

let certs: CertSet;
let pg: PgServer;
let plain: PgServer;

beforeAll(async () => {
  certs = await createCertSet();
  [pg, plain] = await Promise.all([
    startTlsPostgres(15, certs, { serverCert: 'cnOnly' }),
    startPostgres({ version: 15 }),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([pg?.stop(), plain?.stop()]);
  await certs?.remove();
});

describe('servedCertificate', () => {
  it('returns the leaf the server presents', async () => {
    expect((await servedCertificate(pg.port)).equals(der(certs.server.cnOnly))).toBe(true);
  });

  it('rejects when the server refuses SSL', async () => {
    await expect(servedCertificate(plain.port)).rejects.toThrow('server refused SSL (N)');
  });
});

describe('setServerCert', () => {
  it('switches certificates without a restart and psql verifies the new one', async () => {
    const pid = pg.pid;
    await pg.setServerCert(certs.server.multipleAltNames);
    expect((await servedCertificate(pg.port)).equals(der(certs.server.multipleAltNames))).toBe(true);
    const env = {
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: certs.bundles.rootServerCa,
      PGHOST: 'foo.wildcard.pg-ssltest.test',
      PGHOSTADDR: '127.0.0.1',
    };
    expect(await pg.sql('select ssl from pg_stat_ssl where pid = pg_backend_pid()', { tcp: true, env })).toBe(
      't',
    );
    const settings = await pg.sql(
      "select name || '=' || setting from pg_settings where name in ('ssl_cert_file', 'ssl_key_file') order by name",
    );
    const [certFile, keyFile] = settings.split('\n').map((l) => l.slice(l.indexOf('=') + 1));
    expect(certFile).toMatch(/\/certs\/server-\d+\.crt$/);
    expect(statSync(keyFile!).mode & 0o777).toBe(0o600);
    if (process.getuid?.() === 0) expect(statSync(keyFile!).uid).not.toBe(0); // the server user's copy
    expect(pg.pid).toBe(pid);

    await pg.setServerCert(certs.server.cnOnly);
    expect((await servedCertificate(pg.port)).equals(der(certs.server.cnOnly))).toBe(true);
  });

  it('rejects, with the server log, when the server keeps its old certificate', async () => {
    // A key that does not belong to the certificate: the reload fails and the old context stays.
    const mismatched = { cert: certs.server.noNames.cert, key: certs.server.cnOnly.key };
    await expect(pg.setServerCert(mismatched, 1000)).rejects.toThrow(
      /did not switch certificates \(still serving the previous certificate\)[\s\S]*key values mismatch/,
    );
    expect((await servedCertificate(pg.port)).equals(der(certs.server.cnOnly))).toBe(true);
  });

  it('refuses on a server without TLS', async () => {
    await expect(plain.setServerCert(certs.server.cnOnly)).rejects.toThrow('started without TLS');
  });
});
