import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OptionError } from '../src/errors.ts';
import { parseConninfo } from '../src/options/conninfo.ts';
import { resolveOptions } from '../src/options/resolve.ts';
import { parseConnectionString, parseUri, uriDecode } from '../src/options/uri.ts';
import { fcParams } from './fc.ts';

type Vector = [uri: string, expected: Record<string, string>, kind: 'inet' | 'local'];

/** src/interfaces/libpq/t/001_uri.pl (PG18), successful parses; `kind` is the (inet)/(local) tag. */
const OK: Vector[] = [
  [
    'postgresql://uri-user:secret@host:12345/db',
    { user: 'uri-user', password: 'secret', dbname: 'db', host: 'host', port: '12345' },
    'inet',
  ],
  [
    'postgresql://uri-user@host:12345/db',
    { user: 'uri-user', dbname: 'db', host: 'host', port: '12345' },
    'inet',
  ],
  ['postgresql://uri-user@host/db', { user: 'uri-user', dbname: 'db', host: 'host' }, 'inet'],
  ['postgresql://host:12345/db', { dbname: 'db', host: 'host', port: '12345' }, 'inet'],
  ['postgresql://host/db', { dbname: 'db', host: 'host' }, 'inet'],
  ['postgresql://uri-user@host:12345/', { user: 'uri-user', host: 'host', port: '12345' }, 'inet'],
  ['postgresql://uri-user@host/', { user: 'uri-user', host: 'host' }, 'inet'],
  ['postgresql://uri-user@', { user: 'uri-user' }, 'local'],
  ['postgresql://host:12345/', { host: 'host', port: '12345' }, 'inet'],
  ['postgresql://host:12345', { host: 'host', port: '12345' }, 'inet'],
  ['postgresql://host/', { host: 'host' }, 'inet'],
  ['postgresql://host', { host: 'host' }, 'inet'],
  ['postgresql://', {}, 'local'],
  ['postgresql://?hostaddr=127.0.0.1', { hostaddr: '127.0.0.1' }, 'inet'],
  ['postgresql://example.com?hostaddr=63.1.2.4', { host: 'example.com', hostaddr: '63.1.2.4' }, 'inet'],
  ['postgresql://%68ost/', { host: 'host' }, 'inet'],
  ['postgresql://host/db?user=uri-user', { user: 'uri-user', dbname: 'db', host: 'host' }, 'inet'],
  [
    'postgresql://host/db?user=uri-user&port=12345',
    { user: 'uri-user', dbname: 'db', host: 'host', port: '12345' },
    'inet',
  ],
  [
    'postgresql://host/db?u%73er=someotheruser&port=12345',
    { user: 'someotheruser', dbname: 'db', host: 'host', port: '12345' },
    'inet',
  ],
  ['postgresql://host:12345?user=uri-user', { user: 'uri-user', host: 'host', port: '12345' }, 'inet'],
  ['postgresql://host?user=uri-user', { user: 'uri-user', host: 'host' }, 'inet'],
  [
    'postgresql://host?  user = uri-user & port  = 12345 ',
    { user: 'uri-user', host: 'host', port: '12345' },
    'inet',
  ],
  ['postgresql://host?', { host: 'host' }, 'inet'],
  ['postgresql://[::1]:12345/db', { dbname: 'db', host: '::1', port: '12345' }, 'inet'],
  ['postgresql://[::1]/db', { dbname: 'db', host: '::1' }, 'inet'],
  ['postgresql://[2001:db8::1234]/', { host: '2001:db8::1234' }, 'inet'],
  ['postgresql://[200z:db8::1234]/', { host: '200z:db8::1234' }, 'inet'],
  ['postgresql://[::1]', { host: '::1' }, 'inet'],
  ['postgres://', {}, 'local'],
  ['postgres:///', {}, 'local'],
  ['postgres:///db', { dbname: 'db' }, 'local'],
  ['postgres://uri-user@/db', { user: 'uri-user', dbname: 'db' }, 'local'],
  ['postgres://?host=/path/to/socket/dir', { host: '/path/to/socket/dir' }, 'local'],
  ['postgres://@host', { host: 'host' }, 'inet'],
  ['postgres://host:/', { host: 'host' }, 'inet'],
  ['postgres://:12345/', { port: '12345' }, 'local'],
  [
    'postgres://otheruser@?host=/no/such/directory',
    { user: 'otheruser', host: '/no/such/directory' },
    'local',
  ],
  [
    'postgres://otheruser@/?host=/no/such/directory',
    { user: 'otheruser', host: '/no/such/directory' },
    'local',
  ],
  [
    'postgres://otheruser@:12345?host=/no/such/socket/path',
    { user: 'otheruser', host: '/no/such/socket/path', port: '12345' },
    'local',
  ],
  [
    'postgres://otheruser@:12345/db?host=/path/to/socket',
    { user: 'otheruser', dbname: 'db', host: '/path/to/socket', port: '12345' },
    'local',
  ],
  [
    'postgres://:12345/db?host=/path/to/socket',
    { dbname: 'db', host: '/path/to/socket', port: '12345' },
    'local',
  ],
  ['postgres://:12345?host=/path/to/socket', { host: '/path/to/socket', port: '12345' }, 'local'],
  ['postgres://%2Fvar%2Flib%2Fpostgresql/dbname', { dbname: 'dbname', host: '/var/lib/postgresql' }, 'local'],
];

/** 001_uri.pl failures, with libpq's exact message (without the program-name prefix). */
const ERRORS: Array<[uri: string, message: string]> = [
  ['postgresql://host/db?u%7aer=someotheruser&port=12345', 'invalid URI query parameter: "uzer"'],
  [
    'postgresql://host?  user user  =  uri  & port = 12345 12 ',
    'unexpected spaces found in "  user user  ", use percent-encoded spaces (%20) instead',
  ],
  [
    'postgresql://host?  user  =  uri-user  & port = 12345 12 ',
    'unexpected spaces found in " 12345 12 ", use percent-encoded spaces (%20) instead',
  ],
  ['postgresql://host?uzer=', 'invalid URI query parameter: "uzer"'],
  ['postgre://', 'missing "=" after "postgre://" in connection info string'],
  [
    'postgres://[::1',
    'end of string reached when looking for matching "]" in IPv6 host address in URI: "postgres://[::1"',
  ],
  ['postgres://[]', 'IPv6 host address may not be empty in URI: "postgres://[]"'],
  [
    'postgres://[::1]z',
    'unexpected character "z" at position 17 in URI (expected ":" or "/"): "postgres://[::1]z"',
  ],
  ['postgresql://host?zzz', 'missing key/value separator "=" in URI query parameter: "zzz"'],
  ['postgresql://host?value1&value2', 'missing key/value separator "=" in URI query parameter: "value1"'],
  ['postgresql://host?key=key=value', 'extra key/value separator "=" in URI query parameter: "key"'],
  ['postgres://host?dbname=%XXfoo', 'invalid percent-encoded token: "%XXfoo"'],
  ['postgresql://a%00b', 'forbidden value %00 in percent-encoded value: "a%00b"'],
  ['postgresql://%zz', 'invalid percent-encoded token: "%zz"'],
  ['postgresql://%1', 'invalid percent-encoded token: "%1"'],
  ['postgresql://%', 'invalid percent-encoded token: "%"'],
];

describe('parseUri: 001_uri.pl vectors', () => {
  it.each(OK)('%s', (uri, expected, kind) => {
    expect(parseUri(uri)).toEqual(expected);
    const resolved = resolveOptions({ conninfo: uri, currentUser: 'me' });
    expect(resolved.hosts).toHaveLength(1);
    expect(resolved.hosts[0]!.isUnixSocket).toBe(kind === 'local');
  });

  it.each(ERRORS)('%s', (uri, message) => {
    const thrown = (() => {
      try {
        parseUri(uri);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(thrown).toBeInstanceOf(OptionError);
    expect((thrown as Error).message).toBe(message);
    // resolveOptions reports the same error.
    expect(() => resolveOptions({ conninfo: uri, currentUser: 'me' })).toThrow(message);
  });

  describe('with PGSSLROOTCERT=system', () => {
    const env = { PGSSLROOTCERT: 'system' };
    it('an explicit sslmode=disable or prefer is parsed as given, and rejected as weak', () => {
      for (const mode of ['disable', 'prefer']) {
        expect(parseUri(`postgresql://host?sslmode=${mode}`)).toEqual({ host: 'host', sslmode: mode });
        expect(() =>
          resolveOptions({ conninfo: `postgresql://host?sslmode=${mode}`, env, currentUser: 'me' }),
        ).toThrow(`weak sslmode "${mode}" may not be used with sslrootcert=system (use "verify-full")`);
      }
    });
    it('sslmode=verify-full equals the default', () => {
      const explicit = resolveOptions({
        conninfo: 'postgresql://host?sslmode=verify-full',
        env,
        currentUser: 'me',
      });
      const implicit = resolveOptions({ conninfo: 'postgresql://host', env, currentUser: 'me' });
      expect(explicit.sslmode).toBe('verify-full');
      expect(implicit.sslmode).toBe('verify-full');
      expect(implicit.sources.sslmode).toBe('default');
    });
  });
});

describe('parseUri: more', () => {
  it('collects multiple hosts and ports into parallel lists', () => {
    expect(parseUri('postgresql://h1:5433,h2:5434/db')).toEqual({
      host: 'h1,h2',
      port: '5433,5434',
      dbname: 'db',
    });
    expect(parseUri('postgresql://h1,h2:5434')).toEqual({ host: 'h1,h2', port: ',5434' });
    expect(parseUri('postgresql://h1,h2')).toEqual({ host: 'h1,h2', port: ',' });
    expect(parseUri('postgresql://[::1]:1,[fe80::1%25eth0],h3:3/x')).toEqual({
      host: '::1,fe80::1%eth0,h3',
      port: '1,,3',
      dbname: 'x',
    });
    expect(parseUri('postgresql://,/db')).toEqual({ host: ',', port: ',', dbname: 'db' });
    const r = resolveOptions({ conninfo: 'postgresql://h1:5433,h2,/db', currentUser: 'me' });
    expect(r.hosts.map((h) => [h.host, h.port, h.isUnixSocket])).toEqual([
      ['h1', 5433, false],
      ['h2', 5432, false],
      ['/tmp', 5432, true],
    ]);
  });

  it('decodes user, password and dbname; keeps "@" and ":" in the password', () => {
    expect(parseUri('postgres://us%40er:p%3Aw:d@h/d%2Fb')).toEqual({
      user: 'us@er',
      password: 'p:w:d',
      host: 'h',
      dbname: 'd/b',
    });
    expect(parseUri('postgres://:pw@h')).toEqual({ password: 'pw', host: 'h' });
    expect(parseUri('postgres://u:@h')).toEqual({ user: 'u', host: 'h' });
  });

  it('decodes UTF-8 percent sequences and keeps raw non-ASCII', () => {
    expect(parseUri('postgres://h/caf%C3%A9?application_name=%E2%9C%93%20ok')).toEqual({
      host: 'h',
      dbname: 'café',
      application_name: '✓ ok',
    });
    expect(parseUri('postgres://h/café')).toEqual({ host: 'h', dbname: 'café' });
    expect(parseUri('postgres://h/%ff')).toEqual({ host: 'h', dbname: '\ufffd' });
  });

  it('translates ssl=true and requiressl as libpq', () => {
    expect(parseUri('postgres://h?ssl=true')).toEqual({ host: 'h', sslmode: 'require' });
    expect(() => parseUri('postgres://h?ssl=false')).toThrow('invalid URI query parameter: "ssl"');
    expect(parseUri('postgres://h?requiressl=1')).toEqual({ host: 'h', sslmode: 'require' });
    expect(parseUri('postgres://h?requiressl=0')).toEqual({ host: 'h', sslmode: 'prefer' });
  });

  it('later query parameters override earlier settings', () => {
    expect(parseUri('postgres://u@h:1/d?user=v&port=2&dbname=e&host=i')).toEqual({
      user: 'v',
      host: 'i',
      port: '2',
      dbname: 'e',
    });
  });

  it('position in the unexpected-character error counts bytes', () => {
    expect(() => parseUri('postgres://é@[::1]x')).toThrow('unexpected character "x" at position 20 in URI');
  });

  it('rejects interior spaces anywhere and raw NUL', () => {
    expect(() => parseUri('postgres://ho st/db')).toThrow('unexpected spaces found in "ho st"');
    expect(parseUri('postgres:// host /db')).toEqual({ host: 'host', dbname: 'db' });
    expect(() => parseUri('postgres://h/d\0b')).toThrow(OptionError);
  });

  it('parseConnectionString dispatches on the prefix', () => {
    expect(parseConnectionString('postgres://h')).toEqual({ host: 'h' });
    expect(parseConnectionString('host=h')).toEqual({ host: 'h' });
    expect(parseConnectionString('')).toEqual({});
  });

  it('uriDecode', () => {
    expect(uriDecode('a%20b')).toBe('a b');
    expect(uriDecode('  x  ')).toBe('x');
    expect(uriDecode('%41%61')).toBe('Aa');
    expect(() => uriDecode('%4')).toThrow('invalid percent-encoded token: "%4"');
    expect(() => uriDecode('%4 ')).toThrow('invalid percent-encoded token: "%4 "');
    // Text with nothing to decode comes back as it is; an unpaired surrogate still becomes U+FFFD.
    expect(uriDecode('/tmp/ca.crt')).toBe('/tmp/ca.crt');
    expect(uriDecode('h\u00e9\u{1F600}')).toBe('h\u00e9\u{1F600}');
    expect(uriDecode('a\uD800b')).toBe('a\uFFFDb');
    expect(uriDecode('\uDC00')).toBe('\uFFFD');
  });

  it('uriDecode: the text itself when there is nothing to decode, as the byte path would give', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
        const t = s.replace(/[% ]/g, '');
        const viaBytes = new TextDecoder().decode(new TextEncoder().encode(t));
        expect(uriDecode(t)).toBe(viaBytes);
      }),
      fcParams(),
    );
  });
});

const syntaxChars = fc.constantFrom(
  ..."='\\ \t\n%@:/?&,[]hostdbuser0123456789aAfFzé\0".split(''),
  'postgres://',
  'postgresql://',
  'host',
  'port',
  'user',
  '%2F',
  '%00',
  '%zz',
);
const anyInput = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.string({ unit: syntaxChars, maxLength: 30 }),
  fc.string({ unit: syntaxChars, maxLength: 30 }).map((s) => `postgresql://${s}`),
);

describe('properties', () => {
  it('parseUri and parseConninfo only ever return options or throw OptionError', () => {
    fc.assert(
      fc.property(anyInput, (s) => {
        for (const parse of [parseUri, parseConninfo, parseConnectionString]) {
          try {
            const out = parse(s);
            for (const v of Object.values(out)) expect(typeof v).toBe('string');
          } catch (e) {
            if (!(e instanceof OptionError)) throw e;
          }
        }
      }),
      fcParams(1000),
    );
  });

  it('percent-encoded components decode back to the original', () => {
    const text = fc
      .string({ unit: 'grapheme', minLength: 1, maxLength: 20 })
      .filter((s) => !s.includes('\0'));
    fc.assert(
      fc.property(text, text, text, text, (user, password, dbname, appname) => {
        const e = encodeURIComponent;
        const uri = `postgresql://${e(user)}:${e(password)}@h/${e(dbname)}?application_name=${e(appname)}`;
        expect(parseUri(uri)).toEqual({ user, password, host: 'h', dbname, application_name: appname });
      }),
      fcParams(),
    );
  });
});
