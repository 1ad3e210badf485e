import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_3_0, PROTOCOL_3_2 } from '../src/codec/constants.ts';
import { OptionError } from '../src/errors.ts';
import { KEYWORDS } from '../src/options/keywords.ts';
import {
  parseIntOption,
  passwordFileHint,
  type ResolveInput,
  resolveOptions,
  toHandshakeConfig,
} from '../src/options/resolve.ts';
import { fcParams } from './fc.ts';

const base: ResolveInput = { currentUser: 'osuser' };
const resolve = (input: ResolveInput) => resolveOptions({ ...base, ...input });
const errorOf = (input: ResolveInput): string => {
  try {
    resolve(input);
  } catch (e) {
    expect(e).toBeInstanceOf(OptionError);
    return (e as Error).message;
  }
  throw new Error('expected an OptionError');
};

describe('defaults', () => {
  it('resolves an empty input like libpq built with SSL and without GSSAPI', () => {
    const r = resolve({});
    expect(r.hosts).toEqual([
      {
        host: '/tmp',
        port: 5432,
        portText: '5432',
        isUnixSocket: true,
        socketPath: '/tmp/.s.PGSQL.5432',
        passwordFromFile: false,
      },
    ]);
    expect(r.user).toBe('osuser');
    expect(r.dbname).toBe('osuser');
    expect(r.sslmode).toBe('prefer');
    expect(r.sslnegotiation).toBe('postgres');
    expect(r.sslcertmode).toBe('allow');
    expect(r.gssencmode).toBe('disable');
    expect(r.channelBinding).toBe('prefer');
    expect(r.targetSessionAttrs).toBe('any');
    expect(r.loadBalanceHosts).toBe('disable');
    expect(r.sslMinProtocolVersion).toBe('TLSv1.2');
    expect(r.sslMaxProtocolVersion).toBeUndefined();
    expect(r.sslsni).toBe(true);
    expect(r.keepalives).toBe(true);
    expect(r.connectTimeout).toBe(0);
    expect(r.minProtocolVersion).toBe(PROTOCOL_3_0);
    expect(r.maxProtocolVersion).toBe(PROTOCOL_3_0);
    expect(r.requireAuth.raw).toBe('');
    expect(r.sources.sslmode).toBe('default');
    expect(r.values.port).toBe('5432');
    expect(r.tlsFiles).toEqual({});
    expect(r.warnings).toEqual([]);
  });

  it('the default socket directory can be changed; "" means localhost over TCP', () => {
    expect(resolve({ defaultSocketDir: '/var/run/postgresql' }).hosts[0]!.socketPath).toBe(
      '/var/run/postgresql/.s.PGSQL.5432',
    );
    const tcp = resolve({ defaultSocketDir: '' }).hosts[0]!;
    expect([tcp.host, tcp.isUnixSocket, tcp.socketPath]).toEqual(['localhost', false, undefined]);
  });

  it('TLS files default under ~/.postgresql', () => {
    const r = resolve({ homeDir: '/home/a' });
    expect(r.tlsFiles).toEqual({
      rootCert: '/home/a/.postgresql/root.crt',
      cert: '/home/a/.postgresql/postgresql.crt',
      key: '/home/a/.postgresql/postgresql.key',
      crl: '/home/a/.postgresql/root.crl',
    });
    expect(r.passfile).toBe('/home/a/.pgpass');
    const explicit = resolve({
      homeDir: '/home/a',
      conninfo: 'sslrootcert=/r sslcert=/c sslkey=/k sslcrldir=/d',
    });
    expect(explicit.tlsFiles).toEqual({ rootCert: '/r', cert: '/c', key: '/k', crlDir: '/d' });
    expect(resolve({ homeDir: '/h', conninfo: 'sslcertmode=disable' }).tlsFiles.cert).toBeUndefined();
  });

  it('without a user anywhere it fails', () => {
    expect(() => resolveOptions({})).toThrow(OptionError);
    expect(resolveOptions({ env: { PGUSER: 'envuser' } }).user).toBe('envuser');
  });

  it('looks the OS user up only when no user is given', () => {
    let lookups = 0;
    const currentUser = () => {
      lookups++;
      return 'looked-up';
    };
    expect(resolveOptions({ conninfo: 'user=given', currentUser }).user).toBe('given');
    expect(resolveOptions({ env: { PGUSER: 'envuser' }, currentUser }).user).toBe('envuser');
    expect(lookups).toBe(0);
    const r = resolveOptions({ currentUser });
    expect([r.user, r.dbname, lookups]).toEqual(['looked-up', 'looked-up', 1]);
    expect(() => resolveOptions({ currentUser: () => undefined })).toThrow(OptionError);
  });
});

describe('precedence: explicit > service > environment > default', () => {
  const serviceFileText = {
    '/h/.pg_service.conf': '[svc]\nhost=svc-host\nport=6000\ndbname=svcdb\nuser=svcuser\n',
  };
  const env = {
    PGHOST: 'env-host',
    PGPORT: '7000',
    PGDATABASE: 'envdb',
    PGUSER: 'envuser',
    PGAPPNAME: 'envapp',
  };

  it('each level fills only what the levels above left unset', () => {
    const r = resolve({ conninfo: 'service=svc port=5000', env, homeDir: '/h', serviceFileText });
    expect(r.hosts[0]).toMatchObject({ host: 'svc-host', port: 5000 });
    expect(r.dbname).toBe('svcdb');
    expect(r.user).toBe('svcuser');
    expect(r.applicationName).toBe('envapp');
    expect(r.sources).toMatchObject({
      port: 'explicit',
      host: 'service',
      dbname: 'service',
      application_name: 'environment',
      sslmode: 'default',
    });
    expect(r.serviceFile).toBe('/h/.pg_service.conf');
  });

  it('params override the conninfo string; empty params are ignored', () => {
    const r = resolve({ conninfo: 'host=a port=1', params: { host: 'b', port: '', dbname: undefined } });
    expect(r.hosts[0]).toMatchObject({ host: 'b', port: 1 });
    expect(() => resolve({ params: { bogus: 'x' } })).toThrow('invalid connection option "bogus"');
  });

  it('environment beats defaults; an empty environment value counts as set', () => {
    expect(resolve({ env: { PGSSLMODE: 'require' } }).sslmode).toBe('require');
    expect(errorOf({ env: { PGSSLMODE: '' } })).toBe('invalid sslmode value: ""');
    expect(resolve({ env: { PGHOST: '' } }).hosts[0]!.host).toBe('/tmp');
  });

  it('every keyword with an environment variable reads it', () => {
    for (const info of KEYWORDS) {
      if (info.envVar === undefined) continue;
      try {
        const r = resolveOptions({ env: { PGUSER: 'u', [info.envVar]: 'x' } });
        expect(r.values[info.keyword]).toBe('x');
        expect(r.sources[info.keyword]).toBe('environment');
      } catch (e) {
        // Validation rejects "x" for enumerations and integers, naming the keyword or the value.
        expect(e).toBeInstanceOf(OptionError);
        expect((e as Error).message).toMatch(new RegExp(`${info.keyword}|"x"`));
      }
    }
    const r = resolve({ env: { PGKRBSRVNAME: 'k', PGREQUIREPEER: 'pg', PGCONNECT_TIMEOUT: '10' } });
    expect(r.values.krbsrvname).toBe('k');
    expect(r.requirepeer).toBe('pg');
    expect(r.connectTimeout).toBe(10);
  });

  it('PGREQUIRESSL=1 means require unless PGSSLMODE is set', () => {
    expect(resolve({ env: { PGREQUIRESSL: '1' } }).sslmode).toBe('require');
    expect(resolve({ env: { PGREQUIRESSL: '0' } }).sslmode).toBe('prefer');
    expect(resolve({ env: { PGREQUIRESSL: '1', PGSSLMODE: 'disable' } }).sslmode).toBe('disable');
  });

  it('startup parameters from PGDATESTYLE, PGTZ, PGGEQO ("default" skipped)', () => {
    const r = resolve({ env: { PGDATESTYLE: 'ISO, DMY', PGTZ: 'UTC', PGGEQO: 'Default' } });
    expect(r.extraParameters).toEqual([
      ['datestyle', 'ISO, DMY'],
      ['timezone', 'UTC'],
    ]);
  });
});

describe('service files', () => {
  const sys = '/usr/local/pgsql/etc/pg_service.conf';

  it('looks in servicefile, then PGSERVICEFILE, else ~/.pg_service.conf, then the system file', () => {
    const files = {
      '/explicit': '[a]\nhost=explicit\n',
      '/envfile': '[a]\nhost=envfile\n',
      '/h/.pg_service.conf': '[a]\nhost=home\n',
      [sys]: '[a]\nhost=system\n[b]\nhost=system-b\n',
      '/etc/custom/pg_service.conf': '[a]\nhost=custom\n',
    };
    const host = (input: ResolveInput) =>
      resolve({ serviceFileText: files, homeDir: '/h', ...input }).hosts[0]!.host;
    expect(host({ conninfo: 'service=a servicefile=/explicit', env: { PGSERVICEFILE: '/envfile' } })).toBe(
      'explicit',
    );
    expect(host({ conninfo: 'service=a', env: { PGSERVICEFILE: '/envfile' } })).toBe('envfile');
    expect(host({ env: { PGSERVICE: 'a' } })).toBe('home');
    expect(host({ conninfo: 'service=b' })).toBe('system-b');
    expect(host({ conninfo: 'service=a', homeDir: '/nohome' })).toBe('system');
    expect(host({ conninfo: 'service=a', homeDir: '/nohome', env: { PGSYSCONFDIR: '/etc/custom' } })).toBe(
      'custom',
    );
    expect(host({ conninfo: 'service=a', homeDir: '/nohome', sysconfDir: '/etc/custom' })).toBe('custom');
  });

  it('accepts a reader function', () => {
    const read = (path: string) => (path === '/h/.pg_service.conf' ? '[s]\ndbname=viaReader\n' : null);
    expect(resolve({ conninfo: 'service=s', homeDir: '/h', serviceFileText: read }).dbname).toBe('viaReader');
  });

  it('errors', () => {
    expect(errorOf({ conninfo: 'service=nope', homeDir: '/h', serviceFileText: {} })).toBe(
      'definition of service "nope" not found',
    );
    expect(errorOf({ conninfo: 'service=a servicefile=/missing', serviceFileText: {} })).toBe(
      'service file "/missing" not found',
    );
    expect(
      errorOf({
        conninfo: 'service=a',
        homeDir: '/h',
        serviceFileText: { '/h/.pg_service.conf': '[a]\nx=1' },
      }),
    ).toBe('syntax error in service file "/h/.pg_service.conf", line 2');
  });

  it('service values never override explicit settings', () => {
    const r = resolve({
      conninfo: 'service=a host=mine',
      homeDir: '/h',
      serviceFileText: { '/h/.pg_service.conf': '[a]\nhost=theirs\nsslmode=require\n' },
    });
    expect(r.hosts[0]!.host).toBe('mine');
    expect(r.sslmode).toBe('require');
    expect(r.sources.sslmode).toBe('service');
  });
});

describe('sslrootcert=system', () => {
  it('makes verify-full the default sslmode, from the environment or explicitly', () => {
    expect(resolve({ env: { PGSSLROOTCERT: 'system' } }).sslmode).toBe('verify-full');
    expect(resolve({ conninfo: 'sslrootcert=system' }).sslmode).toBe('verify-full');
  });

  it('rejects weaker modes from any source', () => {
    for (const mode of ['disable', 'allow', 'prefer', 'require', 'verify-ca']) {
      const message = `weak sslmode "${mode}" may not be used with sslrootcert=system (use "verify-full")`;
      expect(errorOf({ conninfo: `sslrootcert=system sslmode=${mode}` })).toBe(message);
      expect(errorOf({ env: { PGSSLROOTCERT: 'system', PGSSLMODE: mode } })).toBe(message);
    }
    expect(errorOf({ env: { PGSSLROOTCERT: 'system', PGREQUIRESSL: '1' } })).toContain(
      'weak sslmode "require"',
    );
  });

  it('hands "system" to the handshake as the root store', () => {
    const config = toHandshakeConfig(resolve({ conninfo: 'host=h sslrootcert=system' }), 0);
    expect(config.tls?.rootCert).toBe('system');
    expect(config.sslmode).toBe('verify-full');
  });
});

describe('§3.7 validation errors', () => {
  const cases: Array<[string, string]> = [
    ['hostaddr=1.1.1.1,2.2.2.2 host=a', 'could not match 1 host names to 2 hostaddr values'],
    ['hostaddr=1.1.1.1 host=a,b,c', 'could not match 3 host names to 1 hostaddr values'],
    ['host=a,b,c port=1,2', 'could not match 2 port numbers to 3 hosts'],
    ['host=a port=1,2', 'could not match 2 port numbers to 1 hosts'],
    ['channel_binding=maybe', 'invalid channel_binding value: "maybe"'],
    ['sslmode=verify', 'invalid sslmode value: "verify"'],
    ['sslmode=Require', 'invalid sslmode value: "Require"'],
    ['sslnegotiation=tls', 'invalid sslnegotiation value: "tls"'],
    ['sslcertmode=always', 'invalid sslcertmode value: "always"'],
    ['gssencmode=yes', 'invalid gssencmode value: "yes"'],
    ['target_session_attrs=master', 'invalid target_session_attrs value: "master"'],
    ['load_balance_hosts=round-robin', 'invalid load_balance_hosts value: "round-robin"'],
    ['require_auth=kerberos', 'invalid require_auth value: "kerberos"'],
    [
      'require_auth=md5,!password',
      'negative require_auth method "!password" cannot be mixed with non-negative methods',
    ],
    ['require_auth=!md5,password', 'require_auth method "password" cannot be mixed with negative methods'],
    ['require_auth=md5,md5', 'require_auth method "md5" is specified more than once'],
    ['min_protocol_version=3.1', 'invalid min_protocol_version value: "3.1"'],
    ['max_protocol_version=4', 'invalid max_protocol_version value: "4"'],
    ["max_protocol_version=''", 'invalid max_protocol_version value: ""'],
    [
      'min_protocol_version=3.2 max_protocol_version=3.0',
      '"min_protocol_version" is greater than "max_protocol_version"',
    ],
    [
      'min_protocol_version=latest max_protocol_version=3.0',
      '"min_protocol_version" is greater than "max_protocol_version"',
    ],
    [
      'sslnegotiation=direct',
      'weak sslmode "prefer" may not be used with sslnegotiation=direct (use "require", "verify-ca", or "verify-full")',
    ],
    [
      'sslnegotiation=direct sslmode=allow',
      'weak sslmode "allow" may not be used with sslnegotiation=direct (use "require", "verify-ca", or "verify-full")',
    ],
    ['ssl_min_protocol_version=TLSv1.4', 'invalid "ssl_min_protocol_version" value: "TLSv1.4"'],
    ['ssl_max_protocol_version=SSLv3', 'invalid "ssl_max_protocol_version" value: "SSLv3"'],
    [
      'ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2',
      'invalid SSL protocol version range',
    ],
    ['ssl_max_protocol_version=TLSv1.1', 'invalid SSL protocol version range'],
    ['ssl_min_protocol_version=TLSv1.1 ssl_max_protocol_version=TLSv1', 'invalid SSL protocol version range'],
    ['port=abc', 'invalid integer value "abc" for connection option "port"'],
    ['port=54x32', 'invalid integer value "54x32" for connection option "port"'],
    ['port=0', 'invalid port number: "0"'],
    ['port=65536', 'invalid port number: "65536"'],
    ['host=a,b port=5432,-1', 'invalid port number: "-1"'],
    ['connect_timeout=10s', 'invalid integer value "10s" for connection option "connect_timeout"'],
    ["connect_timeout=''", 'invalid integer value "" for connection option "connect_timeout"'],
    ['keepalives=on', 'invalid integer value "on" for connection option "keepalives"'],
    ['keepalives_idle=1.5', 'invalid integer value "1.5" for connection option "keepalives_idle"'],
    ['keepalives_interval=x', 'invalid integer value "x" for connection option "keepalives_interval"'],
    [
      'keepalives_count=9999999999',
      'invalid integer value "9999999999" for connection option "keepalives_count"',
    ],
    ['tcp_user_timeout=-', 'invalid integer value "-" for connection option "tcp_user_timeout"'],
    ['gssencmode=require', 'gssencmode value "require" invalid when GSSAPI support is not compiled in'],
    ['sslcertmode=require', 'sslcertmode value "require" is not supported (check OpenSSL version)'],
  ];
  it.each(cases)('%s → %s', (conninfo, message) => {
    expect(errorOf({ conninfo })).toBe(message);
  });

  it('accepts the valid enumerations', () => {
    const r = resolve({
      conninfo:
        'channel_binding=require sslmode=verify-ca sslnegotiation=direct sslcertmode=disable gssencmode=prefer ' +
        'target_session_attrs=prefer-standby load_balance_hosts=disable require_auth=!password,!md5 ' +
        'ssl_min_protocol_version=tlsv1.3 ssl_max_protocol_version=TLSV1.3 min_protocol_version=3.2',
    });
    expect(r.channelBinding).toBe('require');
    expect(r.sslmode).toBe('verify-ca');
    expect(r.sslnegotiation).toBe('direct');
    expect(r.sslcertmode).toBe('disable');
    expect(r.gssencmode).toBe('prefer');
    expect(r.targetSessionAttrs).toBe('prefer-standby');
    expect(r.requireAuth.allowed.has('md5')).toBe(false);
    expect(r.sslMinProtocolVersion).toBe('TLSv1.3');
    expect(r.sslMaxProtocolVersion).toBe('TLSv1.3');
    // A minimum above 3.0 makes the default maximum the latest.
    expect(r.minProtocolVersion).toBe(PROTOCOL_3_2);
    expect(r.maxProtocolVersion).toBe(PROTOCOL_3_2);
    expect(
      resolve({ conninfo: "ssl_min_protocol_version='' ssl_max_protocol_version=TLSv1" })
        .sslMinProtocolVersion,
    ).toBeUndefined();
    expect(
      resolve({ conninfo: 'ssl_min_protocol_version=TLSv1 ssl_max_protocol_version=TLSv1' })
        .sslMaxProtocolVersion,
    ).toBe('TLSv1');
    expect(resolve({ conninfo: 'max_protocol_version=latest' }).maxProtocolVersion).toBe(PROTOCOL_3_2);
  });

  it('integers allow surrounding whitespace, a sign, and int32 range', () => {
    expect(parseIntOption(' 42 ', 'x')).toBe(42);
    expect(parseIntOption('\t+7\n', 'x')).toBe(7);
    expect(parseIntOption('-2147483648', 'x')).toBe(-2147483648);
    expect(() => parseIntOption('2147483648', 'x')).toThrow(
      'invalid integer value "2147483648" for connection option "x"',
    );
    expect(() => parseIntOption('4 2', 'x')).toThrow(OptionError);
    expect(() => parseIntOption('0x10', 'x')).toThrow(OptionError);
    const r = resolve({
      conninfo: "port=' 6543 ' connect_timeout=-5 keepalives=0 keepalives_idle=30 tcp_user_timeout=1000",
    });
    expect(r.hosts[0]!.port).toBe(6543);
    expect(r.connectTimeout).toBe(0);
    expect(r.keepalives).toBe(false);
    expect(r.keepalivesIdle).toBe(30);
    expect(r.tcpUserTimeout).toBe(1000);
  });

  it('integer parsing agrees with Number for plain decimal strings', () => {
    fc.assert(
      fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), (n) => {
        expect(parseIntOption(` ${n}\t`, 'x')).toBe(n);
      }),
      fcParams(),
    );
  });
});

describe('hosts', () => {
  it('builds one target per host with per-host ports', () => {
    const r = resolve({ conninfo: 'host=a,/sock,,@abstract port=1,2,3,4' });
    expect(r.hosts.map((h) => [h.host, h.port, h.isUnixSocket, h.socketPath])).toEqual([
      ['a', 1, false, undefined],
      ['/sock', 2, true, '/sock/.s.PGSQL.2'],
      ['/tmp', 3, true, '/tmp/.s.PGSQL.3'],
      ['@abstract', 4, true, '@abstract/.s.PGSQL.4'],
    ]);
  });

  it('a single port applies to every host; an empty port element means 5432', () => {
    expect(resolve({ conninfo: 'host=a,b port=6000' }).hosts.map((h) => h.port)).toEqual([6000, 6000]);
    expect(resolve({ conninfo: 'host=a,b port=,6000' }).hosts.map((h) => h.port)).toEqual([5432, 6000]);
  });

  it('hostaddr decides the number of hosts and turns a slot into TCP', () => {
    const r = resolve({ conninfo: 'hostaddr=127.0.0.1,::1 host=/sock,name' });
    expect(r.hosts.map((h) => [h.host, h.hostaddr, h.isUnixSocket])).toEqual([
      ['/sock', '127.0.0.1', false],
      ['name', '::1', false],
    ]);
    const only = resolve({ conninfo: 'hostaddr=10.0.0.1' }).hosts[0]!;
    expect([only.host, only.hostaddr, only.isUnixSocket]).toEqual(['', '10.0.0.1', false]);
    expect(toHandshakeConfig(resolve({ conninfo: 'hostaddr=10.0.0.1' }), 0).host).toBe('');
  });

  it('rejects socket paths longer than sun_path', () => {
    expect(errorOf({ conninfo: `host=/${'d'.repeat(100)}` })).toMatch(
      /^Unix-domain socket path ".*" is too long \(maximum 107 bytes\)$/,
    );
  });

  it('load_balance_hosts=random shuffles with the given random source', () => {
    const hostsOf = (random: () => number) =>
      resolve({ conninfo: 'host=a,b,c,d load_balance_hosts=random', random }).hosts.map((h) => h.host);
    expect(hostsOf(() => 0.999)).toEqual(['a', 'b', 'c', 'd']);
    expect(hostsOf(() => 0).sort()).toEqual(['a', 'b', 'c', 'd']);
    expect(hostsOf(() => 0)).not.toEqual(['a', 'b', 'c', 'd']);
  });
});

describe('password file', () => {
  const pgpass = [
    'localhost:5432:*:alice:local-pw',
    'db1:5432:app:alice:db1-pw',
    '*:6000:*:*:any-6000',
    '10.0.0.9:*:*:*:by-addr',
  ].join('\n');

  it('looks up a password per host when none is given', () => {
    const r = resolve({
      conninfo: 'host=db1,db2,,db3 port=5432,6000,5432,5432 dbname=app user=alice',
      homeDir: '/h',
      pgpassText: pgpass,
    });
    expect(r.hosts.map((h) => [h.password, h.passwordFromFile])).toEqual([
      ['db1-pw', true],
      ['any-6000', true],
      ['local-pw', true],
      [undefined, false],
    ]);
    expect(r.passfile).toBe('/h/.pgpass');
    expect(passwordFileHint(r, 0)).toBe('password retrieved from file "/h/.pgpass"');
    expect(passwordFileHint(r, 3)).toBeUndefined();
  });

  it('uses hostaddr when host is empty', () => {
    const r = resolve({ conninfo: 'hostaddr=10.0.0.9 user=bob', homeDir: '/h', pgpassText: pgpass });
    expect(r.hosts[0]!.password).toBe('by-addr');
  });

  it('an explicit password wins and the file is not consulted', () => {
    const r = resolve({
      conninfo: 'host=db1 dbname=app user=alice password=given',
      homeDir: '/h',
      pgpassText: pgpass,
    });
    expect(r.hosts[0]).toMatchObject({ password: 'given', passwordFromFile: false });
    expect(r.password).toBe('given');
    expect(passwordFileHint(r, 0)).toBeUndefined();
    expect(
      resolve({ env: { PGPASSWORD: 'envpw' }, homeDir: '/h', pgpassText: pgpass }).hosts[0]!.password,
    ).toBe('envpw');
  });

  it('passfile / PGPASSFILE choose the file; a reader gets its path', () => {
    const seen: string[] = [];
    const read = (path: string) => {
      seen.push(path);
      return '*:*:*:*:from-reader\n';
    };
    expect(resolve({ conninfo: 'passfile=/p1', pgpassText: read }).hosts[0]!.password).toBe('from-reader');
    resolve({ env: { PGPASSFILE: '/p2' }, pgpassText: read });
    resolve({ homeDir: '/home/x', pgpassText: read });
    expect(seen).toEqual(['/p1', '/p2', '/home/x/.pgpass']);
    // No home directory and no passfile: nothing to read.
    expect(resolve({ pgpassText: read }).hosts[0]!.password).toBeUndefined();
    expect(resolve({ homeDir: '/h', pgpassText: () => null }).hosts[0]!.password).toBeUndefined();
    // Pre-read text is used even when its path is unknown.
    const pre = resolve({ pgpassText: '*:*:*:*:pre-read\n' });
    expect(pre.hosts[0]!.password).toBe('pre-read');
    expect(pre.passfile).toBeUndefined();
    expect(passwordFileHint(pre, 0)).toBe('password retrieved from file ".pgpass"');
  });

  it('ignores a file with group or world access, with libpq warning', () => {
    const r = resolve({ homeDir: '/h', pgpassText: '*:*:*:*:pw\n', pgpassMode: 0o100644 });
    expect(r.hosts[0]!.password).toBeUndefined();
    expect(r.warnings).toEqual([
      'WARNING: password file "/h/.pgpass" has group or world access; permissions should be u=rw (0600) or less',
    ]);
    expect(
      resolve({ homeDir: '/h', pgpassText: '*:*:*:*:pw\n', pgpassMode: 0o100600 }).hosts[0]!.password,
    ).toBe('pw');
  });

  it('takes the mode a reader returns with the text, before pgpassMode', () => {
    const open = resolve({ homeDir: '/h', pgpassText: () => ({ text: '*:*:*:*:pw\n', mode: 0o644 }) });
    expect(open.hosts[0]!.password).toBeUndefined();
    expect(open.warnings).toEqual([
      'WARNING: password file "/h/.pgpass" has group or world access; permissions should be u=rw (0600) or less',
    ]);
    // The reader's mode wins over pgpassMode; a reader without one leaves pgpassMode in charge.
    const own = () => ({ text: '*:*:*:*:pw\n', mode: 0o600 });
    expect(resolve({ homeDir: '/h', pgpassText: own, pgpassMode: 0o644 }).hosts[0]!.password).toBe('pw');
    const noMode = () => ({ text: '*:*:*:*:pw\n' });
    expect(
      resolve({ homeDir: '/h', pgpassText: noMode, pgpassMode: 0o640 }).hosts[0]!.password,
    ).toBeUndefined();
    expect(resolve({ homeDir: '/h', pgpassText: noMode }).hosts[0]!.password).toBe('pw');
  });

  it('warns about a password file that is not a plain file and ignores it, before its mode', () => {
    const r = resolve({ homeDir: '/h', pgpassText: () => ({ text: '', isFile: false, mode: 0o644 }) });
    expect(r.hosts[0]!.password).toBeUndefined();
    expect(r.warnings).toEqual(['WARNING: password file "/h/.pgpass" is not a plain file']);
    const file = () => ({ text: '*:*:*:*:pw\n', isFile: true, mode: 0o600 });
    expect(resolve({ homeDir: '/h', pgpassText: file }).hosts[0]!.password).toBe('pw');
  });

  it('does not call the reader when a password is given', () => {
    let calls = 0;
    const read = () => {
      calls++;
      return '*:*:*:*:pw\n';
    };
    expect(resolve({ conninfo: 'password=given', homeDir: '/h', pgpassText: read }).hosts[0]!.password).toBe(
      'given',
    );
    expect(calls).toBe(0);
    expect(resolve({ homeDir: '/h', pgpassText: read }).hosts[0]!.password).toBe('pw');
    expect(calls).toBe(1);
  });

  it('matches the default socket directory as localhost', () => {
    const r = resolve({ homeDir: '/h', pgpassText: 'localhost:5432:osuser:osuser:sock\n' });
    expect(r.hosts[0]).toMatchObject({ host: '/tmp', password: 'sock' });
  });
});

describe('toHandshakeConfig', () => {
  it('maps the resolved options for one host', () => {
    const r = resolve({
      conninfo:
        'host=h1,h2 port=1,2 user=u dbname=d password=p application_name=app fallback_application_name=fb ' +
        "options='-c x=1' client_encoding=auto replication=database sslmode=require channel_binding=require " +
        'require_auth=scram-sha-256 sslsni=0 sslpassword=kp ssl_max_protocol_version=TLSv1.3 max_protocol_version=3.2',
      env: { PGTZ: 'UTC' },
      homeDir: '/h',
    });
    const config = toHandshakeConfig(r, 1, { rootCert: ['PEM'], cert: 'C', key: 'K' });
    expect(config).toMatchObject({
      host: 'h2',
      isUnixSocket: false,
      user: 'u',
      database: 'd',
      password: 'p',
      applicationName: 'app',
      fallbackApplicationName: 'fb',
      options: '-c x=1',
      clientEncoding: 'UTF8',
      replication: 'database',
      extraParameters: [['timezone', 'UTC']],
      sslmode: 'require',
      sslnegotiation: 'postgres',
      gssencmode: 'disable',
      channelBinding: 'require',
      minProtocolVersion: PROTOCOL_3_0,
      maxProtocolVersion: PROTOCOL_3_2,
    });
    expect(config.requireAuth?.raw).toBe('scram-sha-256');
    expect(config.tls).toEqual({
      sni: false,
      rootCertPath: '/h/.postgresql/root.crt',
      rootCert: ['PEM'],
      cert: 'C',
      key: 'K',
      passphrase: 'kp',
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.3',
    });
    expect(() => toHandshakeConfig(r, 2)).toThrow(RangeError);
  });

  it('drops client certificates with sslcertmode=disable and omits empty values', () => {
    const r = resolve({ conninfo: "sslcertmode=disable application_name=''" });
    const config = toHandshakeConfig(r, 0, { cert: 'C', key: 'K' });
    expect(config.tls?.cert).toBeUndefined();
    expect(config.tls?.key).toBeUndefined();
    expect('applicationName' in config).toBe(false);
    expect('options' in config).toBe(false);
    expect(config.isUnixSocket).toBe(true);
    expect(config.host).toBe('/tmp');
  });
});

describe('properties', () => {
  it('resolveOptions on random conninfo strings only returns or throws OptionError', () => {
    const token = fc.constantFrom(
      'host=a',
      'host=a,b',
      'hostaddr=1.2.3.4',
      'port=1,2',
      'port=x',
      'sslmode=disable',
      'sslmode=verify-full',
      'sslrootcert=system',
      'sslnegotiation=direct',
      'require_auth=!md5',
      'min_protocol_version=3.2',
      'max_protocol_version=3.0',
      'ssl_min_protocol_version=TLSv1.3',
      'ssl_max_protocol_version=TLSv1.1',
      'load_balance_hosts=random',
      'user=',
      "dbname=''",
      'connect_timeout= 5',
      'bogus=1',
      "'",
    );
    fc.assert(
      fc.property(fc.array(token, { maxLength: 6 }), (tokens) => {
        try {
          const r = resolve({ conninfo: tokens.join(' ') });
          expect(r.hosts.length).toBeGreaterThan(0);
          toHandshakeConfig(r, r.hosts.length - 1);
        } catch (e) {
          if (!(e instanceof OptionError)) throw e;
        }
      }),
      fcParams(),
    );
  });
});
