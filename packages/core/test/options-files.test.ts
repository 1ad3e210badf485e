import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OptionError } from '../src/errors.ts';
import {
  lookupPgpass,
  parsePgpass,
  passwordFromFileHint,
  pgpassPermissionsOk,
  pgpassPermissionsWarning,
} from '../src/options/pgpass.ts';
import { parseServiceFile } from '../src/options/service.ts';
import { fcParams } from './fc.ts';

const errorOf = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(OptionError);
    return e as Error;
  }
  throw new Error('expected an OptionError');
};

describe('parseServiceFile', () => {
  const FILE = [
    '# a comment',
    '',
    '[other]',
    'host=other.example.com',
    '',
    '  [mydb]  ',
    '  host=db.example.com  ',
    'port=5433',
    '\t# indented comment',
    'dbname=app',
    'host=ignored-second-setting',
    'options=-c geqo=off',
    '[next]',
    'host=next.example.com',
    'garbage',
  ].join('\n');

  it('returns the options of the wanted group only', () => {
    expect(parseServiceFile(FILE, 'mydb')).toEqual({
      host: 'db.example.com',
      port: '5433',
      dbname: 'app',
      options: '-c geqo=off',
    });
    expect(parseServiceFile(FILE, 'other')).toEqual({ host: 'other.example.com' });
  });

  it('checks only the lines of the wanted group', () => {
    expect(() => parseServiceFile(FILE, 'next', 'f')).toThrow('syntax error in service file "f", line 15');
  });

  it('returns null when the group is absent; {} for an empty group', () => {
    expect(parseServiceFile(FILE, 'missing')).toBeNull();
    expect(parseServiceFile(FILE, 'MYDB')).toBeNull();
    expect(parseServiceFile('[empty]\n[x]\nhost=h\n', 'empty')).toEqual({});
    expect(parseServiceFile('', 'x')).toBeNull();
  });

  it('matches on "[" + name + "]" prefix, as libpq', () => {
    expect(parseServiceFile('[mydb] trailing words\nhost=h', 'mydb')).toEqual({ host: 'h' });
    expect(parseServiceFile('[mydb2]\nhost=h', 'mydb')).toBeNull();
  });

  it('handles CRLF line endings and a missing final newline', () => {
    expect(parseServiceFile('[s]\r\nhost=h\r\nport=1', 's')).toEqual({ host: 'h', port: '1' });
  });

  it('values are taken verbatim after the first "="', () => {
    expect(parseServiceFile("[s]\npassword='a=b' c", 's')).toEqual({ password: "'a=b' c" });
    expect(parseServiceFile('[s]\npassword=', 's')).toEqual({ password: '' });
  });

  it('syntax errors inside the group, with file name and line number', () => {
    expect(errorOf(() => parseServiceFile('[s]\nhost', 's', '/etc/pg_service.conf')).message).toBe(
      'syntax error in service file "/etc/pg_service.conf", line 2',
    );
    expect(errorOf(() => parseServiceFile('# x\n[s]\nbogus=1', 's')).message).toBe(
      'syntax error in service file "pg_service.conf", line 3',
    );
    // Spaces around "=" make the key unknown.
    expect(errorOf(() => parseServiceFile('[s]\nhost = h', 's', 'f')).message).toBe(
      'syntax error in service file "f", line 2',
    );
    // requiressl is only translated by the conninfo parsers.
    expect(errorOf(() => parseServiceFile('[s]\nrequiressl=1', 's', 'f')).message).toBe(
      'syntax error in service file "f", line 2',
    );
  });

  it('rejects nested service and servicefile settings', () => {
    expect(errorOf(() => parseServiceFile('[s]\nservice=t', 's', 'f')).message).toBe(
      'nested service specifications not supported in service file "f", line 2',
    );
    expect(errorOf(() => parseServiceFile('[s]\nservicefile=/x', 's', 'f')).message).toBe(
      'nested servicefile specifications not supported in service file "f", line 2',
    );
  });

  it('limits lines to 1022 bytes plus the newline', () => {
    const ok = `[s]\nhost=${'h'.repeat(1021 - 5)}\n`;
    expect(parseServiceFile(ok, 's')?.host).toHaveLength(1016);
    const tooLong = `[s]\nhost=${'h'.repeat(1022 - 5)}\n`;
    expect(errorOf(() => parseServiceFile(tooLong, 's', 'f')).message).toBe(
      'line 2 too long in service file "f"',
    );
    // Checked on every line, also outside the group; bytes, not UTF-16 units.
    expect(() => parseServiceFile(`${'é'.repeat(600)}\n[s]`, 's')).toThrow('line 1 too long');
    // The last line has no newline to count.
    expect(parseServiceFile(`[s]\nhost=${'h'.repeat(1022 - 5)}`, 's')?.host).toHaveLength(1017);
  });

  it('never throws anything but OptionError', () => {
    const text = fc.string({ unit: fc.constantFrom(...'[]=#\n \thostportxs'.split('')), maxLength: 80 });
    fc.assert(
      fc.property(text, (t) => {
        try {
          parseServiceFile(t, 's');
        } catch (e) {
          if (!(e instanceof OptionError)) throw e;
        }
      }),
      fcParams(),
    );
  });
});

describe('pgpass', () => {
  const key = { host: 'db.example.com', port: '5432', dbname: 'app', user: 'alice' };

  it('parses fields, wildcards and escapes', () => {
    const entries = parsePgpass(
      [
        '# comment',
        'db.example.com:5432:app:alice:s3cret',
        '*:*:*:bob:pw\\:with\\:colons\\\\:ignored',
        '\\*:1:db:u:literal-star',
        'h:*:d:u:',
        'short:line:only',
        '',
        '   # not a comment (no leading #)',
      ].join('\r\n'),
    );
    expect(entries).toEqual([
      { host: 'db.example.com', port: '5432', database: 'app', user: 'alice', password: 's3cret', line: 2 },
      { host: null, port: null, database: null, user: 'bob', password: 'pw:with:colons\\', line: 3 },
      { host: '*', port: '1', database: 'db', user: 'u', password: 'literal-star', line: 4 },
      { host: 'h', port: null, database: 'd', user: 'u', password: '', line: 5 },
    ]);
  });

  it('escaped colons in match fields (IPv6 hosts)', () => {
    const entries = parsePgpass('\\:\\:1:5432:*:*:v6\n');
    expect(entries[0]!.host).toBe('::1');
    expect(lookupPgpass(entries, { ...key, host: '::1' })).toBe('v6');
  });

  it('first match wins', () => {
    const entries = parsePgpass('*:*:*:alice:first\ndb.example.com:5432:app:alice:second\n');
    expect(lookupPgpass(entries, key)).toBe('first');
  });

  it('matches exactly, per field', () => {
    const entries = parsePgpass('db.example.com:5432:app:alice:pw\n');
    expect(lookupPgpass(entries, key)).toBe('pw');
    expect(lookupPgpass(entries, { ...key, host: 'DB.example.com' })).toBeUndefined();
    expect(lookupPgpass(entries, { ...key, port: '5433' })).toBeUndefined();
    expect(lookupPgpass(entries, { ...key, dbname: 'ap' })).toBeUndefined();
    expect(lookupPgpass(entries, { ...key, user: 'alicex' })).toBeUndefined();
    // The port is compared as text; a number is formatted first.
    expect(lookupPgpass(entries, { ...key, port: 5432 })).toBe('pw');
    expect(lookupPgpass(entries, { ...key, port: '05432' })).toBeUndefined();
  });

  it('"*" is a wildcard only as a whole field', () => {
    const entries = parsePgpass('db*:*:*:*:pw\n');
    expect(lookupPgpass(entries, key)).toBeUndefined();
    expect(lookupPgpass(entries, { ...key, host: 'db*' })).toBe('pw');
  });

  it('localhost matches the default socket directory and an empty host; the default port is 5432', () => {
    const entries = parsePgpass('localhost:5432:*:*:local\n');
    expect(lookupPgpass(entries, { ...key, host: '/tmp', port: '' })).toBe('local');
    expect(lookupPgpass(entries, { ...key, host: '' })).toBe('local');
    expect(lookupPgpass(entries, { ...key, host: undefined, port: undefined })).toBe('local');
    expect(lookupPgpass(entries, { ...key, host: '/var/run/postgresql' })).toBeUndefined();
    expect(
      lookupPgpass(entries, { ...key, host: '/var/run/postgresql', defaultSocketDir: '/var/run/postgresql' }),
    ).toBe('local');
    // A socket directory is matched by its path otherwise.
    const byPath = parsePgpass('/sock:5432:*:*:bypath\n');
    expect(lookupPgpass(byPath, { ...key, host: '/sock' })).toBe('bypath');
  });

  it('needs a database and a user name', () => {
    const entries = parsePgpass('*:*:*:*:pw\n');
    expect(lookupPgpass(entries, { ...key, dbname: '' })).toBeUndefined();
    expect(lookupPgpass(entries, { ...key, user: '' })).toBeUndefined();
  });

  it('permissions: any group or world bit makes libpq ignore the file', () => {
    expect(pgpassPermissionsOk(0o100600)).toBe(true);
    expect(pgpassPermissionsOk(0o400)).toBe(true);
    expect(pgpassPermissionsOk(0o640)).toBe(false);
    expect(pgpassPermissionsOk(0o604)).toBe(false);
    expect(pgpassPermissionsOk(0o601)).toBe(false);
    expect(pgpassPermissionsWarning('/h/.pgpass')).toBe(
      'WARNING: password file "/h/.pgpass" has group or world access; permissions should be u=rw (0600) or less',
    );
    expect(passwordFromFileHint('/h/.pgpass')).toBe('password retrieved from file "/h/.pgpass"');
  });

  it('escaped fields round-trip through lookup', () => {
    const field = fc.string({ unit: fc.constantFrom(...'ab:\\*'.split('')), minLength: 1, maxLength: 8 });
    const esc = (s: string): string => s.replace(/[\\:]/g, (c) => `\\${c}`);
    fc.assert(
      fc.property(field, field, field, field, field, (host, port, dbname, user, password) => {
        const entries = parsePgpass(
          `${esc(host)}:${esc(port)}:${esc(dbname)}:${esc(user)}:${esc(password)}\n`,
        );
        expect(lookupPgpass(entries, { host, port, dbname, user })).toBe(password);
      }),
      fcParams(),
    );
  });
});
