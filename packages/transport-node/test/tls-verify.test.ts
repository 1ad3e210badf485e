/**
 * Server-certificate verification against real PostgreSQL 15, case by case from src/test/ssl's
 * 001_ssltests.pl (reference §10.2): the host-name table for every server certificate, trust roots,
 * sslrootcert=system, validity, CRLs and TLS protocol versions. Connections go through the libpq-style
 * `connect()` with `hostaddr=127.0.0.1` and `host=<name under test>`, as the PostgreSQL suite does.
 *
 * Expected texts are libpq's: each failure below was checked against psql with libpq 18. One
 * deliberate difference: pgconn appends OpenSSL's verification code to `certificate verify failed`,
 * e.g. `SSL error: certificate verify failed (CERT_REVOKED)`, where libpq stops after `failed`.
 *
 * One server; the certificate is switched with setServerCert (reload, no restart). A second server
 * limited to TLSv1.2 covers the protocol-version cases.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Connection, OptionError, TlsError } from '@pgconn/core';
import { type CertSet, createCertSet, type PgServer, startTlsPostgres } from '@pgconn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, resolveNodeOptions } from '../src/index.ts';

let certs: CertSet;
let pg: PgServer;
/** ssl_max_protocol_version = TLSv1.2. */
let pgTls12: PgServer;

beforeAll(async () => {
  certs = await createCertSet();
  [pg, pgTls12] = await Promise.all([
    startTlsPostgres(15, certs, { serverCert: 'cnOnly' }),
    startTlsPostgres(15, certs, { serverCert: 'cnOnly', settings: { ssl_max_protocol_version: 'TLSv1.2' } }),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([pg?.stop(), pgTls12?.stop()]);
  await certs?.remove();
});

interface Outcome {
  /** pg_stat_ssl.ssl and .version of the session, e.g. 't TLSv1.3' or 'f '. */
  session?: string;
  error?: Error;
}

/**
 * Connects with `conninfo` after the suite's defaults: no client certificate, no CRL, no
 * ~/.postgresql, no PG* environment (as 001_ssltests.pl's `sslkey=invalid sslcert=invalid …`).
 */
async function attempt(conninfo: string, server: PgServer = pg): Promise<Outcome> {
  let conn: Connection;
  try {
    conn = await connect(
      `hostaddr=127.0.0.1 port=${server.port} user=testuser dbname=postgres connect_timeout=10 ` +
        `sslcert=invalid sslkey=invalid sslrootcert=invalid sslcrl=invalid sslcrldir=invalid ${conninfo}`,
      { env: {} },
    );
  } catch (error) {
    return { error: error as Error };
  }
  try {
    const r = await conn.query('select ssl, version from pg_stat_ssl where pid = pg_backend_pid()');
    const [ssl, version] = r.rows[0] ?? [];
    expect(conn.tls !== null).toBe(ssl === 't');
    return { session: `${ssl} ${version ?? ''}` };
  } finally {
    await conn.close();
  }
}

/** libpq's message for a failure at 127.0.0.1 (with hostaddr, libpq names only the address). */
const failed = (message: string, server: PgServer = pg) =>
  `connection to server at "127.0.0.1", port ${server.port} failed: ${message}`;

async function expectTls(conninfo: string, version = 'TLSv1.3', server: PgServer = pg): Promise<void> {
  const got = await attempt(conninfo, server);
  expect(got.error?.message).toBeUndefined();
  expect(got.session).toBe(`t ${version}`);
}

async function expectTlsError(conninfo: string, message: string, server: PgServer = pg): Promise<void> {
  const got = await attempt(conninfo, server);
  expect(got.session).toBeUndefined();
  expect(got.error).toBeInstanceOf(TlsError);
  expect(got.error?.message).toBe(failed(message, server));
}

const root = () => certs.bundles.rootServerCa;
const verifyFull = (host: string) => `host=${host} sslmode=verify-full sslrootcert=${root()}`;

const mismatch = (first: string, host: string, others = 0): string =>
  others === 0
    ? `server certificate for "${first}" does not match host name "${host}"`
    : `server certificate for "${first}" (and ${others} other name${others === 1 ? '' : 's'}) does not match host name "${host}"`;

const CN = 'common-name.pg-ssltest.test';
const DNS1 = 'dns1.alt-name.pg-ssltest.test';
const DNS2 = 'dns2.alt-name.pg-ssltest.test';

type ServerCert = keyof CertSet['server'];
/** [host, null = connects | libpq's error text]. */
type HostCase = readonly [host: string, error: string | null];

/** §10.2 "Host name matching (verify-full)", per server certificate. */
const HOST_NAME_CASES: ReadonlyArray<readonly [ServerCert, readonly HostCase[]]> = [
  [
    'cnOnly',
    [
      [CN, null],
      ['COMMON-NAME.pg-ssltest.test', null], // case-insensitive
      ['wronghost.test', mismatch(CN, 'wronghost.test')],
    ],
  ],
  [
    'cnAndAltNames',
    [
      [DNS1, null],
      [DNS2, null],
      // The CN is ignored once dNSName SANs exist.
      [CN, mismatch(DNS1, CN, 1)],
    ],
  ],
  [
    'cnAndIpAltNames',
    [
      // Only iPAddress SANs: a DNS host falls back to the CN; an IP host uses the SANs.
      [CN, null],
      ['192.0.2.1', null],
      ['2001:db8::1', null],
      ['192.0.2.2', mismatch('192.0.2.1', '192.0.2.2', 1)],
      ['wronghost.test', mismatch('192.0.2.1', 'wronghost.test', 2)],
    ],
  ],
  [
    'ipAltNames',
    [
      ['192.0.2.1', null],
      ['192.000.002.001', null], // inet_aton form
      ['2001:DB8::1', null],
      ['2001:db8:0:0:0:0:0:1', null],
      ['2001:db8::0.0.0.1', null],
      ['192.0.2.2', mismatch('192.0.2.1', '192.0.2.2', 1)],
      ['::1', mismatch('192.0.2.1', '::1', 1)],
      ['2001:DB8::1/128', mismatch('192.0.2.1', '2001:DB8::1/128', 1)],
      ['wronghost.test', mismatch('192.0.2.1', 'wronghost.test', 1)],
    ],
  ],
  [
    'ipCnOnly',
    [
      ['192.0.2.1', null],
      // A CN is compared as a string.
      ['192.000.002.001', mismatch('192.0.2.1', '192.000.002.001')],
    ],
  ],
  [
    'ipCnAndAltNames',
    [
      ['192.0.2.2', null],
      ['2001:db8::1', null],
      // iPAddress SANs exist: the CN 192.0.2.1 is ignored.
      ['192.0.2.1', mismatch('192.0.2.2', '192.0.2.1', 1)],
      ['wronghost.test', mismatch('192.0.2.2', 'wronghost.test', 2)],
    ],
  ],
  [
    'ipCnAndDnsAltNames',
    [
      // NSS-like rule: an IP host may match the CN when the SANs are dNSNames only.
      ['192.0.2.1', null],
      [DNS1, null],
      [DNS2, null],
      ['192.0.2.2', mismatch(DNS1, '192.0.2.2', 2)],
      ['wronghost.test', mismatch(DNS1, 'wronghost.test', 1)],
    ],
  ],
  [
    'ipInDnsname',
    [
      ['192.0.2.1', null],
      ['192.0.2.2', mismatch('192.0.2.1', '192.0.2.2')],
    ],
  ],
  [
    'singleAltName',
    [
      ['single.alt-name.pg-ssltest.test', null],
      [
        'deep.subdomain.wildcard.pg-ssltest.test',
        mismatch('single.alt-name.pg-ssltest.test', 'deep.subdomain.wildcard.pg-ssltest.test'),
      ],
    ],
  ],
  [
    'multipleAltNames',
    [
      [DNS1, null],
      [DNS2, null],
      ['foo.wildcard.pg-ssltest.test', null],
      ['FOO.WILDCARD.pg-ssltest.test', null],
      ['wronghost.alt-name.pg-ssltest.test', mismatch(DNS1, 'wronghost.alt-name.pg-ssltest.test', 2)],
      // `*` matches exactly one label.
      [
        'deep.subdomain.wildcard.pg-ssltest.test',
        mismatch(DNS1, 'deep.subdomain.wildcard.pg-ssltest.test', 2),
      ],
      ['wildcard.pg-ssltest.test', mismatch(DNS1, 'wildcard.pg-ssltest.test', 2)],
    ],
  ],
  [
    'noNames',
    [
      [CN, "could not get server's host name from server certificate"],
      ['192.0.2.1', "could not get server's host name from server certificate"],
    ],
  ],
];

describe.each(HOST_NAME_CASES)('server certificate %s, sslmode=verify-full', (cert, cases) => {
  beforeAll(() => pg.setServerCert(certs.server[cert]));

  const rows = cases.map(([host, error]) => ({ host, error, outcome: error ?? 'connects' }));
  it.each(rows)('host=$host → $outcome', async ({ host, error }) => {
    if (error === null) await expectTls(verifyFull(host));
    else await expectTlsError(verifyFull(host), error);
  });
});

/** A server certificate (server CA, OU only, no CN) with the given iPAddress SANs, made with openssl. */
async function issueIpOnlyCert(
  name: string,
  sans: readonly string[],
): Promise<{ cert: string; key: string }> {
  const cnf = join(certs.dir, 'ip-only.cnf');
  await writeFile(
    cnf,
    '[req]\ndistinguished_name = dn\n[dn]\n[ext]\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n',
  );
  const cert = join(certs.dir, `${name}.crt`);
  const key = certs.server.cnOnly.key;
  await promisify(execFile)('openssl', [
    ...['req', '-new', '-x509', '-config', cnf, '-extensions', 'ext', '-key', key, '-days', '30', '-sha256'],
    ...['-subj', '/OU=PostgreSQL test suite', '-CA', certs.ca.server.cert, '-CAkey', certs.ca.server.key],
    ...['-addext', `subjectAltName=${sans.map((a) => `IP:${a}`).join(',')}`, '-out', cert],
  ]);
  return { cert, key };
}

/**
 * IPv6 iPAddress SANs named first in the message: libpq prints them with pg_inet_net_ntop (`::`
 * for the longest zero run, embedded IPv4 dotted), not as eight full groups.
 */
describe.each([
  ['2001:DB8:0:0:1:0:0:1', '::ffff:192.0.2.1', '192.0.2.1'],
  ['::ffff:192.0.2.1', '::1'],
  ['2001:db8::', '::'],
  ['::192.0.2.1', '1:0:0:2:0:0:0:3'],
])('iPAddress SANs %s, %s…', (...sans) => {
  const names: Record<string, string> = {
    '2001:DB8:0:0:1:0:0:1': '2001:db8::1:0:0:1',
    '::ffff:192.0.2.1': '::ffff:192.0.2.1',
    '2001:db8::': '2001:db8::',
    '::192.0.2.1': '::192.0.2.1',
  };
  beforeAll(async () =>
    pg.setServerCert(await issueIpOnlyCert(`server-ipv6-${sans.length}-${sans[0]}`, sans)),
  );
  afterAll(() => pg.setServerCert(certs.server.cnOnly));

  it('a mismatch names the first SAN as libpq prints it', async () => {
    const others = sans.length - 1;
    await expectTlsError(verifyFull('wronghost.test'), mismatch(names[sans[0]!]!, 'wronghost.test', others));
  });

  it('each SAN matches its own address', async () => {
    for (const san of sans) await expectTls(verifyFull(san));
  });
});

describe('host name checks only under verify-full', () => {
  beforeAll(() => pg.setServerCert(certs.server.cnOnly));

  it('verify-ca and require (with a root file) ignore the name', async () => {
    await expectTls(`host=wronghost.test sslmode=verify-ca sslrootcert=${root()}`);
    await expectTls(`host=wronghost.test sslmode=require sslrootcert=${root()}`);
  });

  it('verify-ca accepts a certificate without any name', async () => {
    await pg.setServerCert(certs.server.noNames);
    try {
      await expectTls(`host=${CN} sslmode=verify-ca sslrootcert=${root()}`);
    } finally {
      await pg.setServerCert(certs.server.cnOnly);
    }
  });

  it('verify-full without a host name (hostaddr only) fails', async () => {
    await expectTlsError(
      `sslmode=verify-full sslrootcert=${root()}`,
      'host name must be specified for a verified SSL connection',
    );
  });

  it('sslsni=0 still connects, with a name and with an IP host', async () => {
    await expectTls(`${verifyFull(CN)} sslsni=0`);
    await expectTls(`${verifyFull(CN)} sslsni=1`);
    await pg.setServerCert(certs.server.ipCnOnly);
    try {
      await expectTls(`${verifyFull('192.0.2.1')} sslsni=0`);
    } finally {
      await pg.setServerCert(certs.server.cnOnly);
    }
  });
});

describe('trust roots (server-cn-only)', () => {
  beforeAll(() => pg.setServerCert(certs.server.cnOnly));
  const VERIFY_FAILED = 'SSL error: certificate verify failed (UNABLE_TO_VERIFY_LEAF_SIGNATURE)';

  it('the root + intermediate bundle verifies under require, verify-ca and verify-full', async () => {
    for (const mode of ['require', 'verify-ca', 'verify-full'])
      await expectTls(`host=${CN} sslmode=${mode} sslrootcert=${root()}`);
  });

  it('both-cas-1 and both-cas-2 (three CAs in two orders) verify', async () => {
    await expectTls(`host=${CN} sslmode=verify-ca sslrootcert=${certs.bundles.bothCas1}`);
    await expectTls(`host=${CN} sslmode=verify-ca sslrootcert=${certs.bundles.bothCas2}`);
  });

  it('a wrong CA fails under verify-full, verify-ca and require (a root file means verification)', async () => {
    for (const mode of ['verify-full', 'verify-ca', 'require']) {
      await expectTlsError(`host=${CN} sslmode=${mode} sslrootcert=${certs.ca.wrong.cert}`, VERIFY_FAILED);
      await expectTlsError(`host=${CN} sslmode=${mode} sslrootcert=${certs.ca.client.cert}`, VERIFY_FAILED);
    }
  });

  it('a wrong CA under prefer falls back to plaintext, as libpq does', async () => {
    expect(await attempt(`host=${CN} sslmode=prefer sslrootcert=${certs.ca.wrong.cert}`)).toEqual({
      session: 'f ',
    });
  });

  it('the intermediate alone is not enough: the chain must reach a root', async () => {
    await expectTlsError(
      `host=${CN} sslmode=verify-ca sslrootcert=${certs.ca.server.cert}`,
      'SSL error: certificate verify failed (UNABLE_TO_GET_ISSUER_CERT)',
    );
  });

  it('a missing sslrootcert fails verify-ca and verify-full before connecting', async () => {
    const missing = join(certs.dir, 'no-such-root.crt');
    const text = (path: string) =>
      `root certificate file "${path}" does not exist\n` +
      "Either provide the file, use the system's trusted roots with sslrootcert=system, or change sslmode to disable server certificate verification.";
    await expectTlsError(`host=${CN} sslmode=verify-ca sslrootcert=${missing}`, text(missing));
    await expectTlsError(`host=${CN} sslmode=verify-full sslrootcert=invalid`, text('invalid'));
  });

  it('a missing sslrootcert under require means no verification', async () => {
    await expectTls(`host=${CN} sslmode=require sslrootcert=invalid`);
    // Even a certificate no CA vouches for.
    await pg.setServerCert(certs.server.expired);
    try {
      await expectTls(`host=${CN} sslmode=require`);
    } finally {
      await pg.setServerCert(certs.server.cnOnly);
    }
  });

  it('sslrootcert=system defaults sslmode to verify-full and fails against the private CA', async () => {
    expect(resolveNodeOptions(`host=${CN} sslrootcert=system`, { env: {} }).sslmode).toBe('verify-full');
    await expectTlsError(`host=${CN} sslrootcert=system`, VERIFY_FAILED);
  });

  it('sslrootcert=system refuses weaker explicit modes', async () => {
    for (const mode of ['verify-ca', 'require']) {
      const got = await attempt(`host=${CN} sslrootcert=system sslmode=${mode}`);
      expect(got.error).toBeInstanceOf(OptionError);
      expect(got.error?.message).toBe(
        `weak sslmode "${mode}" may not be used with sslrootcert=system (use "verify-full")`,
      );
    }
  });
});

describe('certificate validity', () => {
  afterAll(() => pg.setServerCert(certs.server.cnOnly));

  it('an expired server certificate fails under verify-ca', async () => {
    await pg.setServerCert(certs.server.expired);
    await expectTlsError(
      `host=${CN} sslmode=verify-ca sslrootcert=${root()}`,
      'SSL error: certificate verify failed (CERT_HAS_EXPIRED)',
    );
  });

  it('a not-yet-valid server certificate fails under verify-ca', async () => {
    await pg.setServerCert(certs.server.notYetValid);
    await expectTlsError(
      `host=${CN} sslmode=verify-ca sslrootcert=${root()}`,
      'SSL error: certificate verify failed (CERT_NOT_YET_VALID)',
    );
  });

  it('a self-signed server certificate fails under verify-ca and verify-full, and under require with a root file', async () => {
    // server-rsapss is its own issuer (CN common-name…): a man in the middle's home-made certificate.
    await pg.setServerCert(certs.server.rsapss);
    for (const mode of ['verify-ca', 'verify-full', 'require']) {
      await expectTlsError(
        `host=${CN} sslmode=${mode} sslrootcert=${root()}`,
        'SSL error: certificate verify failed (DEPTH_ZERO_SELF_SIGNED_CERT)',
      );
    }
  });
});

describe('CRLs', () => {
  const verifyCa = () => `host=${CN} sslmode=verify-ca sslrootcert=${root()}`;

  describe('server-revoked', () => {
    beforeAll(() => pg.setServerCert(certs.server.revoked));
    const REVOKED = 'SSL error: certificate verify failed (CERT_REVOKED)';

    it('passes without a CRL', async () => {
      await expectTls(verifyCa());
    });

    it('fails with sslcrl=root+server.crl (a file holding two CRLs)', async () => {
      await expectTlsError(`${verifyCa()} sslcrl=${certs.crl.rootServer}`, REVOKED);
    });

    it("fails with sslcrldir=root+server-crldir (sslcrl='')", async () => {
      await expectTlsError(`${verifyCa()} sslcrl='' sslcrldir=${certs.crl.rootServerDir}`, REVOKED);
    });

    it('passes when sslcrl names a missing file: libpq then ignores sslcrldir as well', async () => {
      await expectTls(`${verifyCa()} sslcrl=invalid sslcrldir=${certs.crl.rootServerDir}`);
    });
  });

  describe('server-cn-only', () => {
    beforeAll(() => pg.setServerCert(certs.server.cnOnly));
    const NO_CRL = 'SSL error: certificate verify failed (UNABLE_TO_GET_CRL)';

    it('passes with the CRLs of its own chain (file and directory)', async () => {
      await expectTls(`${verifyCa()} sslcrl=${certs.crl.rootServer}`);
      await expectTls(`${verifyCa()} sslcrl='' sslcrldir=${certs.crl.rootServerDir}`);
    });

    it("fails with another CA's CRL: every CA of the chain needs one (file and directory)", async () => {
      await expectTlsError(`${verifyCa()} sslcrl=${certs.crl.client}`, NO_CRL);
      await expectTlsError(`${verifyCa()} sslcrl='' sslcrldir=${certs.crl.clientDir}`, NO_CRL);
      // server.crl alone lacks the root's CRL.
      await expectTlsError(`${verifyCa()} sslcrl=${certs.crl.server}`, NO_CRL);
    });
  });
});

describe('TLS protocol versions', () => {
  it('a client requiring TLSv1.3 against a server limited to TLSv1.2 fails with the libpq hint', async () => {
    await expectTlsError(
      `host=${CN} sslmode=require ssl_min_protocol_version=TLSv1.3`,
      'SSL error: tlsv1 alert protocol version\n' +
        'This may indicate that the server does not support any SSL protocol version between TLSv1.3 and TLSv1.3.',
      pgTls12,
    );
    await expectTlsError(
      `host=${CN} sslmode=verify-full sslrootcert=${root()} ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.3`,
      'SSL error: tlsv1 alert protocol version\n' +
        'This may indicate that the server does not support any SSL protocol version between TLSv1.3 and TLSv1.3.',
      pgTls12,
    );
  });

  it('under prefer the same failure falls back to plaintext', async () => {
    expect(await attempt(`host=${CN} sslmode=prefer ssl_min_protocol_version=TLSv1.3`, pgTls12)).toEqual({
      session: 'f ',
    });
  });

  it('the defaults negotiate TLSv1.2 with that server and TLSv1.3 with an unlimited one', async () => {
    await expectTls(verifyFull(CN), 'TLSv1.2', pgTls12);
    await pg.setServerCert(certs.server.cnOnly);
    await expectTls(verifyFull(CN), 'TLSv1.3');
  });

  it('ssl_max_protocol_version=TLSv1.2 caps the client', async () => {
    await expectTls(
      `${verifyFull(CN)} ssl_min_protocol_version=TLSv1.2 ssl_max_protocol_version=TLSv1.2`,
      'TLSv1.2',
    );
  });

  it('invalid ranges and values are option errors', async () => {
    const cases: Array<[string, string]> = [
      [
        'ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2',
        'invalid SSL protocol version range',
      ],
      ['ssl_min_protocol_version=incorrect_tls', 'invalid "ssl_min_protocol_version" value: "incorrect_tls"'],
      ['ssl_max_protocol_version=incorrect_tls', 'invalid "ssl_max_protocol_version" value: "incorrect_tls"'],
    ];
    for (const [options, message] of cases) {
      const got = await attempt(`host=${CN} sslmode=require ${options}`);
      expect(got.error).toBeInstanceOf(OptionError);
      expect(got.error?.message).toBe(message);
    }
  });
});
