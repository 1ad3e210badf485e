/**
 * SCRAM-SHA-256 and SCRAM-SHA-256-PLUS against real PostgreSQL 15 and 18 (reference §6, §4.6 and
 * src/test/ssl/t/002_scram.pl in §10.2), plus MD5 / cleartext users, channel_binding and require_auth.
 * Users come from startTlsPostgres' TLS_USERS/TLS_HBA table (password `pass`): scramuser
 * (scram-sha-256), md5user (md5), passworduser (password), certuser (cert), testuser (trust).
 *
 * Every failure text below is libpq's, checked against psql with libpq 18.
 */
import { AuthError, type Connection, type ConnectStep, OptionError, ServerError } from '@pgconn/core';
import {
  type CertSet,
  createCertSet,
  type IssuedCert,
  type PgServer,
  type PgVersion,
  startTlsPostgres,
  TEST_PASSWORD,
} from '@pgconn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../src/index.ts';

let certs: CertSet;
let certuser: IssuedCert;
const servers = new Map<PgVersion, PgServer>();

beforeAll(async () => {
  certs = await createCertSet();
  const [pg15, pg18, cert] = await Promise.all([
    startTlsPostgres(15, certs),
    startTlsPostgres(18, certs),
    certs.clientCert('certuser'),
  ]);
  servers.set(15, pg15);
  servers.set(18, pg18);
  certuser = cert;
}, 60_000);

afterAll(async () => {
  await Promise.all([...servers.values()].map((s) => s.stop()));
  await certs?.remove();
});

interface Outcome {
  authMethod?: string;
  /** pg_stat_ssl.ssl of the session. */
  ssl?: boolean;
  user?: string;
  /** TCP connections opened (STARTED steps). */
  connections: number;
  error?: Error;
}

/**
 * Connects to `server` as libpq would with `conninfo` appended to verified-TLS defaults (server
 * certificate localhost); no PG* environment, no password file, no ~/.postgresql.
 */
async function attempt(server: PgServer, conninfo: string): Promise<Outcome> {
  let connections = 0;
  const onStep = (s: ConnectStep) => {
    if (s.state === 'STARTED') connections++;
  };
  let conn: Connection;
  try {
    conn = await connect(
      `host=localhost hostaddr=127.0.0.1 port=${server.port} dbname=postgres connect_timeout=10 ` +
        `sslmode=verify-full sslrootcert=${certs.bundles.rootServerCa} sslcert=invalid sslkey=invalid ` +
        `sslcrl=invalid sslcrldir=invalid passfile=${certs.dir}/no-such-pgpass ${conninfo}`,
      { env: {}, onStep },
    );
  } catch (error) {
    return { connections, error: error as Error };
  }
  try {
    const r = await conn.query('select ssl, current_user from pg_stat_ssl where pid = pg_backend_pid()');
    const ssl = r.rows[0]?.[0] === 't';
    expect(conn.tls !== null).toBe(ssl);
    return { authMethod: conn.handshake.authMethod, ssl, user: r.rows[0]?.[1] ?? '', connections };
  } finally {
    await conn.close();
  }
}

const PW = `password=${TEST_PASSWORD}`;
const failed = (server: PgServer, message: string) =>
  `connection to server at "127.0.0.1", port ${server.port} failed: ${message}`;

describe.each([15, 18] as const)('PostgreSQL %i', (version) => {
  const pg = () => servers.get(version)!;

  const expectOk = async (conninfo: string, authMethod: string, ssl = true) => {
    const got = await attempt(pg(), conninfo);
    expect(got.error?.message).toBeUndefined();
    expect({ authMethod: got.authMethod, ssl: got.ssl, connections: got.connections }).toEqual({
      authMethod,
      ssl,
      connections: 1,
    });
  };

  const expectFail = async (
    conninfo: string,
    type: abstract new (...a: never[]) => Error,
    message: string,
  ) => {
    const got = await attempt(pg(), conninfo);
    expect(got.error).toBeInstanceOf(type);
    expect(got.error?.message).toBe(failed(pg(), message));
    return got;
  };

  /** Invalid options fail before any connection, without the `connection to server` prefix. */
  const expectOptionError = async (conninfo: string, message: string) => {
    const got = await attempt(pg(), conninfo);
    expect(got.error).toBeInstanceOf(OptionError);
    expect(got.error?.message).toBe(message);
    expect(got.connections).toBe(0);
  };

  describe('SCRAM-SHA-256 and -PLUS', () => {
    it('over TLS scramuser negotiates SCRAM-SHA-256-PLUS (channel_binding=prefer)', async () => {
      await expectOk(`user=scramuser ${PW}`, 'SCRAM-SHA-256-PLUS');
    });

    it('channel_binding=require over TLS uses -PLUS', async () => {
      await expectOk(`user=scramuser ${PW} channel_binding=require`, 'SCRAM-SHA-256-PLUS');
    });

    it('channel_binding=disable over TLS uses SCRAM-SHA-256', async () => {
      await expectOk(`user=scramuser ${PW} channel_binding=disable`, 'SCRAM-SHA-256');
    });

    it('plaintext (sslmode=disable) uses SCRAM-SHA-256', async () => {
      await expectOk(`user=scramuser ${PW} sslmode=disable`, 'SCRAM-SHA-256', false);
    });

    it('channel_binding=require over plaintext fails: SSL not in use', async () => {
      await expectFail(
        `user=scramuser ${PW} sslmode=disable channel_binding=require`,
        AuthError,
        'channel binding required, but SSL not in use',
      );
    });

    it('an invalid channel_binding value is an option error', async () => {
      await expectOptionError(
        `user=scramuser ${PW} channel_binding=invalid_value`,
        'invalid channel_binding value: "invalid_value"',
      );
    });

    it('a wrong password: ServerError 28P01 with the server text', async () => {
      const got = await expectFail(
        `user=scramuser password=wrong`,
        ServerError,
        'FATAL:  password authentication failed for user "scramuser"',
      );
      expect((got.error as ServerError).code).toBe('28P01');
      expect(got.connections).toBe(1);
    });

    it('a wrong password under sslmode=prefer is tried again in plaintext, as libpq does', async () => {
      const got = await attempt(pg(), 'user=scramuser password=wrong sslmode=prefer');
      const once = failed(pg(), 'FATAL:  password authentication failed for user "scramuser"');
      expect(got.error).toBeInstanceOf(ServerError);
      expect(got.error?.message).toBe(`${once}\n${once}`);
      expect(got.connections).toBe(2);
    });

    it('no password at all', async () => {
      await expectFail('user=scramuser', Error, 'fe_sendauth: no password supplied');
    });
  });

  describe('channel_binding=require with other methods (002_scram.pl)', () => {
    it('the MD5 user fails: not supported by the request', async () => {
      const message = "channel binding required but not supported by server's authentication request";
      await expectFail(`user=md5user ${PW} channel_binding=require`, Error, message);
      await expectFail(`user=md5user ${PW} channel_binding=require sslmode=disable`, Error, message);
    });

    it('the cleartext-password user fails the same way, before sending the password', async () => {
      await expectFail(
        `user=passworduser ${PW} channel_binding=require`,
        AuthError,
        "channel binding required but not supported by server's authentication request",
      );
    });

    it('cert authentication fails: authenticated without channel binding', async () => {
      await expectFail(
        `user=certuser sslcert=${certuser.cert} sslkey=${certuser.key} channel_binding=require`,
        AuthError,
        'channel binding required, but server authenticated client without channel binding',
      );
    });

    it('trust fails the same way', async () => {
      await expectFail(
        'user=testuser channel_binding=require',
        AuthError,
        'channel binding required, but server authenticated client without channel binding',
      );
    });

    it('cert authentication without channel_binding=require connects', async () => {
      const got = await attempt(pg(), `user=certuser sslcert=${certuser.cert} sslkey=${certuser.key}`);
      expect(got.error?.message).toBeUndefined();
      expect([got.authMethod, got.user]).toEqual(['trust', 'certuser']);
    });
  });

  describe('MD5 and cleartext users', () => {
    it('md5user authenticates with MD5', async () => {
      await expectOk(`user=md5user ${PW}`, 'md5');
      await expectOk(`user=md5user ${PW} sslmode=disable`, 'md5', false);
    });

    it('passworduser authenticates with a cleartext password', async () => {
      await expectOk(`user=passworduser ${PW}`, 'password');
    });

    it('wrong passwords: 28P01', async () => {
      for (const user of ['md5user', 'passworduser']) {
        const got = await expectFail(
          `user=${user} password=wrong`,
          ServerError,
          `FATAL:  password authentication failed for user "${user}"`,
        );
        expect((got.error as ServerError).code).toBe('28P01');
      }
    });
  });

  describe('require_auth', () => {
    const requirement = (raw: string, reason: string) =>
      `authentication method requirement "${raw}" failed: ${reason}`;

    /** [user, options, authMethod on success | libpq's reason on failure]. */
    const CASES: ReadonlyArray<readonly [string, string, { ok: string } | { fail: string }]> = [
      ['scramuser', 'require_auth=scram-sha-256', { ok: 'SCRAM-SHA-256-PLUS' }],
      ['scramuser', 'require_auth=scram-sha-256 channel_binding=disable', { ok: 'SCRAM-SHA-256' }],
      ['scramuser', 'require_auth=scram-sha-256 channel_binding=require', { ok: 'SCRAM-SHA-256-PLUS' }],
      [
        'md5user',
        'require_auth=scram-sha-256',
        { fail: requirement('scram-sha-256', 'server requested a hashed password') },
      ],
      ['md5user', 'require_auth=md5', { ok: 'md5' }],
      ['md5user', 'require_auth=!md5', { fail: requirement('!md5', 'server requested a hashed password') }],
      ['md5user', 'require_auth=!scram-sha-256', { ok: 'md5' }],
      // 002_scram.pl: channel binding can fail even when require_auth succeeds.
      [
        'md5user',
        'require_auth=md5 channel_binding=require',
        { fail: "channel binding required but not supported by server's authentication request" },
      ],
      ['passworduser', 'require_auth=password', { ok: 'password' }],
      [
        'passworduser',
        'require_auth=!password',
        { fail: requirement('!password', 'server requested a cleartext password') },
      ],
      [
        'passworduser',
        'require_auth=md5,scram-sha-256',
        { fail: requirement('md5,scram-sha-256', 'server requested a cleartext password') },
      ],
      ['scramuser', 'require_auth=md5', { fail: requirement('md5', 'server requested SASL authentication') }],
      [
        'scramuser',
        'require_auth=password,md5',
        { fail: requirement('password,md5', 'server requested SASL authentication') },
      ],
      // libpq 18: SASL passes while some SASL mechanism is allowed; the chosen mechanism is checked.
      [
        'scramuser',
        'require_auth=!scram-sha-256',
        { fail: requirement('!scram-sha-256', 'server requested SCRAM-SHA-256-PLUS authentication') },
      ],
      [
        'scramuser',
        'require_auth=!scram-sha-256 channel_binding=disable',
        { fail: requirement('!scram-sha-256', 'server requested SCRAM-SHA-256 authentication') },
      ],
      [
        'scramuser',
        'require_auth=oauth',
        { fail: requirement('oauth', 'server requested SCRAM-SHA-256-PLUS authentication') },
      ],
      [
        'scramuser',
        'require_auth=!scram-sha-256,!oauth',
        { fail: requirement('!scram-sha-256,!oauth', 'server requested SASL authentication') },
      ],
      ['scramuser', 'require_auth=!oauth', { ok: 'SCRAM-SHA-256-PLUS' }],
      ['testuser', 'require_auth=none', { ok: 'trust' }],
      [
        'testuser',
        'require_auth=!none',
        { fail: requirement('!none', 'server did not complete authentication') },
      ],
      [
        'testuser',
        'require_auth=scram-sha-256',
        { fail: requirement('scram-sha-256', 'server did not complete authentication') },
      ],
      ['testuser', 'require_auth=scram-sha-256,none', { ok: 'trust' }],
      ['scramuser', 'require_auth=scram-sha-256,none', { ok: 'SCRAM-SHA-256-PLUS' }],
    ];

    it.each(
      CASES.map(([user, options, want]) => ({
        user,
        options,
        want,
        label: 'ok' in want ? want.ok : 'fails',
      })),
    )('$user $options → $label', async ({ user, options, want }) => {
      if ('ok' in want) await expectOk(`user=${user} ${PW} ${options}`, want.ok);
      else await expectFail(`user=${user} ${PW} ${options}`, Error, want.fail);
    });

    it('option errors', async () => {
      const cases: Array<[string, string]> = [
        ['require_auth=bogus', 'invalid require_auth value: "bogus"'],
        ['require_auth=md5,md5', 'require_auth method "md5" is specified more than once'],
        [
          'require_auth=md5,!password',
          'negative require_auth method "!password" cannot be mixed with non-negative methods',
        ],
      ];
      for (const [options, message] of cases)
        await expectOptionError(`user=scramuser ${PW} ${options}`, message);
    });
  });
});

describe('tls-server-end-point with other signature algorithms', () => {
  afterAll(async () => {
    await Promise.all([...servers.values()].map((s) => s.setServerCert(certs.server.localhost)));
  });

  // The server checks the binding data: a hash taken with the wrong digest fails with
  // `SCRAM channel binding check failed`.
  it.each([
    ['rsapss', 'RSA-PSS (hash from the RSASSA-PSS parameters, bug #17760)'],
    ['sha384', 'ECDSA with SHA-384'],
    ['cnOnly', 'ECDSA with SHA-256'],
  ] as const)('%s: %s, channel_binding=require succeeds on 15 and 18', async (cert, _what) => {
    const server = certs.server[cert];
    // server-rsapss is self-signed: it is its own root.
    const rootCert = cert === 'rsapss' ? server.cert : certs.bundles.rootServerCa;
    for (const pg of servers.values()) {
      await pg.setServerCert(server);
      const got = await attempt(
        pg,
        `user=scramuser ${PW} channel_binding=require host=common-name.pg-ssltest.test sslrootcert=${rootCert}`,
      );
      expect(got.error?.message).toBeUndefined();
      expect([got.authMethod, got.ssl]).toEqual(['SCRAM-SHA-256-PLUS', true]);
    }
  });
});
