import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OptionError } from '../src/errors.ts';
import { formatConninfo, isConnectionString, parseConninfo } from '../src/options/conninfo.ts';
import { KEYWORDS } from '../src/options/keywords.ts';
import { fcParams } from './fc.ts';

describe('parseConninfo: keyword/value syntax', () => {
  it('parses unquoted pairs separated by whitespace', () => {
    expect(parseConninfo('host=localhost port=5432 dbname=mydb')).toEqual({
      host: 'localhost',
      port: '5432',
      dbname: 'mydb',
    });
    expect(parseConninfo('')).toEqual({});
    expect(parseConninfo('   \t\n ')).toEqual({});
  });

  it('allows whitespace around "=" (any C isspace character)', () => {
    expect(parseConninfo('host = a  port\t=\t1\ndbname\v=\fx\r')).toEqual({
      host: 'a',
      port: '1',
      dbname: 'x',
    });
    expect(parseConninfo('  host=a  ')).toEqual({ host: 'a' });
  });

  it("single-quoted values keep spaces and take \\' and \\\\ escapes", () => {
    expect(parseConninfo("options='-c geqo=off' password='it\\'s'")).toEqual({
      options: '-c geqo=off',
      password: "it's",
    });
    expect(parseConninfo("password='a\\\\b'")).toEqual({ password: 'a\\b' });
    expect(parseConninfo("password='\\x\\ y'")).toEqual({ password: 'x y' });
    expect(parseConninfo("password='='")).toEqual({ password: '=' });
    // A quoted value ends at the closing quote; the next pair may follow directly.
    expect(parseConninfo("user='a'host=b")).toEqual({ user: 'a', host: 'b' });
  });

  it('backslash escapes in unquoted values', () => {
    expect(parseConninfo('password=a\\ b user=x')).toEqual({ password: 'a b', user: 'x' });
    expect(parseConninfo("password=it\\'s")).toEqual({ password: "it's" });
    expect(parseConninfo('password=a\\\\')).toEqual({ password: 'a\\' });
    expect(parseConninfo('password=end\\')).toEqual({ password: 'end' });
    // A quote inside an unquoted value is an ordinary character.
    expect(parseConninfo("password=a'b")).toEqual({ password: "a'b" });
    expect(parseConninfo('password=a=b')).toEqual({ password: 'a=b' });
  });

  it("empty values: '' and a trailing '='", () => {
    expect(parseConninfo("password='' user=x")).toEqual({ password: '', user: 'x' });
    expect(parseConninfo('password=')).toEqual({ password: '' });
    // libpq skips blanks after "=", so an unquoted empty value swallows the next token.
    expect(parseConninfo('host= port=1')).toEqual({ host: 'port=1' });
  });

  it('a later setting overrides an earlier one', () => {
    expect(parseConninfo('host=a host=b')).toEqual({ host: 'b' });
  });

  it('translates the legacy requiressl keyword', () => {
    expect(parseConninfo('requiressl=1')).toEqual({ sslmode: 'require' });
    expect(parseConninfo('requiressl=10')).toEqual({ sslmode: 'require' });
    expect(parseConninfo('requiressl=0')).toEqual({ sslmode: 'prefer' });
    expect(parseConninfo('requiressl=yes')).toEqual({ sslmode: 'prefer' });
  });

  it('accepts every keyword of the table', () => {
    for (const { keyword } of KEYWORDS) expect(parseConninfo(`${keyword}=v`)).toEqual({ [keyword]: 'v' });
  });

  const errors: Array<[string, string]> = [
    ['host', 'missing "=" after "host" in connection info string'],
    ['host localhost', 'missing "=" after "host" in connection info string'],
    ['host=a port', 'missing "=" after "port" in connection info string'],
    ['postgre://', 'missing "=" after "postgre://" in connection info string'],
    ["password='abc", 'unterminated quoted string in connection info string'],
    ["password='abc\\'", 'unterminated quoted string in connection info string'],
    ["password='", 'unterminated quoted string in connection info string'],
    ['hots=a', 'invalid connection option "hots"'],
    ['=a', 'invalid connection option ""'],
    ['tty=x', 'invalid connection option "tty"'],
    ['HOST=x', 'invalid connection option "HOST"'],
    // The first problem wins, as libpq stores pairs while it parses.
    ["bogus=1 password='x", 'invalid connection option "bogus"'],
  ];
  it.each(errors)('%j → %s', (input, message) => {
    let thrown: unknown;
    try {
      parseConninfo(input);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(OptionError);
    expect((thrown as Error).message).toBe(message);
  });

  it('refuses a NUL character instead of truncating', () => {
    expect(() => parseConninfo('host=a\0 sslmode=verify-full')).toThrow(OptionError);
  });

  it('isConnectionString: URI prefix or "="', () => {
    expect(isConnectionString('postgres://x')).toBe(true);
    expect(isConnectionString('postgresql://')).toBe(true);
    expect(isConnectionString('dbname=x')).toBe(true);
    expect(isConnectionString('mydb')).toBe(false);
  });
});

describe('formatConninfo', () => {
  it('quotes what needs quoting', () => {
    expect(formatConninfo({ host: 'h', password: "a b'c\\", options: '', user: undefined })).toBe(
      "host=h password='a b\\'c\\\\' options=''",
    );
  });

  it('round-trips through parseConninfo', () => {
    const keyword = fc.constantFrom(...KEYWORDS.map((k) => k.keyword));
    const value = fc.string({ unit: 'binary', maxLength: 30 }).filter((s) => !s.includes('\0'));
    fc.assert(
      fc.property(fc.dictionary(keyword, value), (options) => {
        expect(parseConninfo(formatConninfo(options))).toEqual(options);
      }),
      fcParams(150),
    );
  });
});
