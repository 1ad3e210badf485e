/**
 * Client certificates against real PostgreSQL 15 (reference §10.2, "Server-side certificate
 * authentication"): cert auth with each key format, encrypted keys, libpq's key-file checks, revoked
 * and foreign certificates, and clientcert=verify-full / verify-ca on trust lines. The server is
 * startTlsPostgres' default: ssl_ca_file root+client_ca.crt, ssl_crl_file root+client.crl, and the
 * TLS_HBA table (ssltestuser/certuser/anotheruser: cert; verifyuser: trust clientcert=verify-full;
 * verifycauser: trust clientcert=verify-ca).
 *
 * Expected texts were checked against psql with libpq 18; differences are noted where they occur.
 */
import { chmod, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Connection, OptionError, ServerError, TlsError } from '@pgconn/core';
import {
  type CertSet,
  CLIENT_KEY_PASSPHRASE,
  createCertSet,
  type IssuedCert,
  type PgServer,
  startTlsPostgres,
} from '@pgconn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../src/index.ts';

let certs: CertSet;
let pg: PgServer;
let certuser: IssuedCert;
let verifyuser: IssuedCert;

beforeAll(async () => {
  certs = await createCertSet();
  [pg, certuser, verifyuser] = await Promise.all([
    startTlsPostgres(15, certs),
    certs.clientCert('certuser'),
    certs.clientCert('verifyuser'),
  ]);
}, 60_000);

afterAll(async () => {
  await pg?.stop();
  await certs?.remove();
});

interface Session {
  user: string;
  /** pg_stat_ssl: client_dn, client_serial, issuer_dn. */
  clientDn: string | null;
  clientSerial: string | null;
  issuerDn: string | null;
}

/** Connects over verified TLS (server cert localhost) with `conninfo` appended; never reads ~/.postgresql. */
async function attempt(conninfo: string): Promise<{ session?: Session; error?: Error }> {
  let conn: Connection;
  try {
    conn = await connect(
      `host=localhost hostaddr=127.0.0.1 port=${pg.port} dbname=postgres connect_timeout=10 ` +
        `sslmode=verify-full sslrootcert=${certs.bundles.rootServerCa} sslcrl=invalid sslcrldir=invalid ` +
        `sslcert=invalid sslkey=invalid ${conninfo}`,
      { env: {} },
    );
  } catch (error) {
    return { error: error as Error };
  }
  try {
    // Certificate authentication answers the startup packet with AuthenticationOk right away.
    expect(conn.handshake.authMethod).toBe('trust');
    const r = await conn.query(
      'select current_user, client_dn, client_serial, issuer_dn from pg_stat_ssl where pid = pg_backend_pid()',
    );
    const [user, clientDn = null, clientSerial = null, issuerDn = null] = r.rows[0] ?? [];
    return { session: { user: user ?? '', clientDn, clientSerial, issuerDn } };
  } finally {
    await conn.close();
  }
}

const failed = (message: string) => `connection to server at "127.0.0.1", port ${pg.port} failed: ${message}`;
const files = (cert: string, key: string) => `sslcert=${cert} sslkey=${key}`;
const CLIENT_CA_DN = '/CN=Test CA for PostgreSQL SSL regression test client certs';

async function expectUser(conninfo: string, user: string, cert: IssuedCert): Promise<void> {
  const got = await attempt(conninfo);
  expect(got.error?.message).toBeUndefined();
  expect(got.session).toEqual({
    user,
    clientDn: `/CN=${user === 'verifycauser' ? 'ssltestuser' : user}`,
    clientSerial: BigInt(`0x${cert.serial}`).toString(),
    issuerDn: CLIENT_CA_DN,
  });
}

async function expectError(
  conninfo: string,
  type: typeof TlsError | typeof ServerError | typeof OptionError,
  message: string,
): Promise<Error> {
  const got = await attempt(conninfo);
  expect(got.session).toBeUndefined();
  expect(got.error).toBeInstanceOf(type);
  expect(got.error?.message).toBe(message);
  return got.error!;
}

const client = () => certs.client.client;

describe('certificate authentication (cert)', () => {
  it('ssltestuser with client.crt and the PEM key', async () => {
    await expectUser(`user=ssltestuser ${files(client().cert, client().key)}`, 'ssltestuser', client());
  });

  it('certuser with its own certificate', async () => {
    await expectUser(`user=certuser ${files(certuser.cert, certuser.key)}`, 'certuser', certuser);
  });

  it('the DER key', async () => {
    await expectUser(
      `user=ssltestuser ${files(client().cert, certs.clientKeys.der)}`,
      'ssltestuser',
      client(),
    );
  });

  it('a chain file with the intermediate (client+client_ca.crt)', async () => {
    await expectUser(
      `user=ssltestuser ${files(certs.bundles.clientChain, client().key)}`,
      'ssltestuser',
      client(),
    );
  });

  it('sslcertmode=allow sends the certificate', async () => {
    await expectUser(
      `user=ssltestuser sslcertmode=allow ${files(client().cert, client().key)}`,
      'ssltestuser',
      client(),
    );
  });

  it('no certificate: the server refuses with its FATAL message', async () => {
    const err = await expectError(
      'user=ssltestuser',
      ServerError,
      failed('FATAL:  connection requires a valid client certificate'),
    );
    expect((err as ServerError).code).toBe('28000');
  });

  it('sslcertmode=disable keeps the certificate back', async () => {
    await expectError(
      `user=ssltestuser sslcertmode=disable ${files(client().cert, client().key)}`,
      ServerError,
      failed('FATAL:  connection requires a valid client certificate'),
    );
  });

  it("another user's certificate: the CN must equal the role", async () => {
    const err = await expectError(
      `user=anotheruser ${files(client().cert, client().key)}`,
      ServerError,
      failed('FATAL:  certificate authentication failed for user "anotheruser"'),
    );
    expect((err as ServerError).code).toBe('28000');
  });
});

describe('encrypted keys (sslpassword)', () => {
  it('encrypted PEM (PKCS#8, aes-128) with the right password', async () => {
    await expectUser(
      `user=ssltestuser ${files(client().cert, certs.clientKeys.encryptedPem.path)} sslpassword=${CLIENT_KEY_PASSPHRASE}`,
      'ssltestuser',
      client(),
    );
  });

  it('encrypted DER with the right password', async () => {
    // libpq 18 with OpenSSL 3 cannot read an encrypted DER key at all ("no start line"; PostgreSQL's
    // own client-encrypted-der.key is in fact unencrypted); pgconn decrypts it.
    await expectUser(
      `user=ssltestuser ${files(client().cert, certs.clientKeys.encryptedDer.path)} sslpassword=${CLIENT_KEY_PASSPHRASE}`,
      'ssltestuser',
      client(),
    );
  });

  // libpq: `could not load private key file "<path>": bad decrypt`.
  it('encrypted PEM with a wrong password fails: bad decrypt', async () => {
    await expectError(
      `user=ssltestuser ${files(client().cert, certs.clientKeys.encryptedPem.path)} sslpassword=wrong`,
      TlsError,
      failed('SSL error: bad decrypt'),
    );
  });

  it('encrypted DER with a wrong password fails: bad decrypt', async () => {
    await expectError(
      `user=ssltestuser ${files(client().cert, certs.clientKeys.encryptedDer.path)} sslpassword=wrong`,
      TlsError,
      failed('SSL error: bad decrypt'),
    );
  });

  it('a key that does not belong to the certificate fails', async () => {
    // libpq: `could not load private key file "<path>": key values mismatch`.
    await expectError(
      `user=ssltestuser ${files(client().cert, certuser.key)}`,
      TlsError,
      failed('SSL error: key values mismatch'),
    );
  });
});

describe("libpq's key-file checks", () => {
  const PERMISSIONS =
    'has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, ' +
    'or permissions u=rw,g=r (0640) or less if owned by root';

  it('a key with mode 0644 is refused before connecting', async () => {
    const key = join(certs.dir, 'client_wrongperms.key');
    await copyFile(client().key, key);
    await chmod(key, 0o644);
    await expectError(
      `user=ssltestuser ${files(client().cert, key)}`,
      OptionError,
      `private key file "${key}" ${PERMISSIONS}`,
    );
  });

  it('mode 0640 is allowed only for a key owned by root', async () => {
    const key = join(certs.dir, 'client_0640.key');
    await copyFile(client().key, key);
    await chmod(key, 0o640);
    const conninfo = `user=ssltestuser ${files(client().cert, key)}`;
    if (process.getuid?.() === 0) await expectUser(conninfo, 'ssltestuser', client());
    else await expectError(conninfo, OptionError, `private key file "${key}" ${PERMISSIONS}`);
  });

  it('a certificate without its key file', async () => {
    const key = join(certs.dir, 'no-such-client.key');
    await expectError(
      `user=ssltestuser ${files(client().cert, key)}`,
      OptionError,
      `certificate present, but not private key file "${key}"`,
    );
  });

  it('a missing certificate file means no certificate (the key is never read)', async () => {
    await expectError(
      `user=ssltestuser ${files(join(certs.dir, 'no-such-client.crt'), join(certs.dir, 'no-such-client.key'))}`,
      ServerError,
      failed('FATAL:  connection requires a valid client certificate'),
    );
  });
});

describe('certificates the server does not accept', () => {
  // TLS 1.3: the server checks the client certificate after the client's handshake completed, so its
  // alert arrives on the first read; TLS 1.2: during the handshake. libpq reports both the same way.
  it.each(['TLSv1.3', 'TLSv1.2'])(
    'a revoked certificate (%s): sslv3 alert certificate revoked',
    async (v) => {
      await expectError(
        `user=ssltestuser ${files(certs.client.revoked.cert, certs.client.revoked.key)} ssl_max_protocol_version=${v}`,
        TlsError,
        failed('SSL error: sslv3 alert certificate revoked'),
      );
    },
  );

  it('revocation applies to trust users as well (sslmode=prefer does not fall back)', async () => {
    await expectError(
      `user=testuser sslmode=prefer ${files(certs.client.revoked.cert, certs.client.revoked.key)}`,
      TlsError,
      failed('SSL error: sslv3 alert certificate revoked'),
    );
  });

  it.each(['TLSv1.3', 'TLSv1.2'])(
    'a certificate from an unknown CA (%s): tlsv1 alert unknown ca',
    async (v) => {
      await expectError(
        `user=ssltestuser ${files(certs.client.wrongCa.cert, certs.client.wrongCa.key)} ssl_max_protocol_version=${v}`,
        TlsError,
        failed('SSL error: tlsv1 alert unknown ca'),
      );
    },
  );
});

describe('clientcert= on trust lines', () => {
  it('verify-full: a certificate whose CN is the role connects', async () => {
    await expectUser(`user=verifyuser ${files(verifyuser.cert, verifyuser.key)}`, 'verifyuser', verifyuser);
  });

  it('verify-full: a CN mismatch fails', async () => {
    const err = await expectError(
      `user=verifyuser ${files(client().cert, client().key)}`,
      ServerError,
      failed('FATAL:  "trust" authentication failed for user "verifyuser"'),
    );
    expect((err as ServerError).code).toBe('28000');
  });

  it('verify-full: no certificate fails', async () => {
    await expectError(
      'user=verifyuser',
      ServerError,
      failed('FATAL:  connection requires a valid client certificate'),
    );
  });

  it('verify-ca: any certificate of the client CA connects', async () => {
    await expectUser(`user=verifycauser ${files(client().cert, client().key)}`, 'verifycauser', client());
  });
});
