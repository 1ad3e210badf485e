/**
 * Connection URIs, as libpq's conninfo_uri_parse_options / conninfo_uri_parse_params /
 * conninfo_uri_decode (fe-connect.c, PG18 semantics):
 *
 *   postgres[ql]://[user[:password]@][netloc][:port][,netloc[:port]...][/dbname][?key=value&...]
 *
 * netloc is a host name, an IPv4 address, `[IPv6]`, or empty (Unix socket). The hosts and ports
 * are collected into parallel comma-separated lists (`host=h1,h2 port=p1,p2`), which are then
 * percent-decoded as a whole, like libpq. Each decoded component may have leading and trailing
 * spaces (they are dropped); interior spaces must be written %20.
 */
import { OptionError } from '../errors.ts';
import { parseConninfo, rejectNul, storeOption, uriPrefixLength } from './conninfo.ts';

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

const hexValue = (c: string | undefined): number => {
  if (c === undefined || c.length !== 1) return -1;
  const code = c.charCodeAt(0);
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
};

const NEEDS_DECODING = /[% \uD800-\uDFFF]/;

/**
 * conninfo_uri_decode: `%XX` → byte, `%00` forbidden, surrounding spaces skipped, interior spaces
 * rejected. The decoded bytes are read as UTF-8 (invalid sequences become U+FFFD).
 */
export function uriDecode(str: string): string {
  // Nothing to decode, the usual case: the text is its own result. A surrogate takes the byte path,
  // whose UTF-8 round trip turns an unpaired one into U+FFFD.
  if (!NEEDS_DECODING.test(str)) return str;
  const bytes: number[] = [];
  const n = str.length;
  let q = 0;
  while (q < n && str[q] === ' ') q++;
  let literalStart = q;
  const flushLiteral = (end: number): void => {
    if (end > literalStart) for (const b of utf8.encode(str.slice(literalStart, end))) bytes.push(b);
  };
  while (q < n && str[q] !== ' ') {
    if (str[q] !== '%') {
      q++;
      continue;
    }
    flushLiteral(q);
    const hi = hexValue(str[q + 1]);
    const lo = hi < 0 ? -1 : hexValue(str[q + 2]);
    if (hi < 0 || lo < 0) throw new OptionError(`invalid percent-encoded token: "${str}"`);
    const c = (hi << 4) | lo;
    if (c === 0) throw new OptionError(`forbidden value %00 in percent-encoded value: "${str}"`);
    bytes.push(c);
    q += 3;
    literalStart = q;
  }
  flushLiteral(q);
  while (q < n && str[q] === ' ') q++;
  if (q < n)
    throw new OptionError(`unexpected spaces found in "${str}", use percent-encoded spaces (%20) instead`);
  return utf8Decoder.decode(new Uint8Array(bytes));
}

/** 1-based byte position of index `i` in `s`, as libpq's `p - buf + 1`. */
const bytePosition = (s: string, i: number): number => utf8.encode(s.slice(0, i)).length + 1;

/**
 * Parses a `postgresql://` or `postgres://` URI; only the keywords it sets are returned.
 * A string without either prefix is handed to parseConninfo, as libpq's parse_connection_string
 * does (so `postgre://` fails with `missing "=" after "postgre://" in connection info string`).
 */
export function parseUri(uri: string): Record<string, string> {
  const prefix = uriPrefixLength(uri);
  if (prefix === 0) return parseConninfo(uri);
  rejectNul(uri, 'connection URI');
  const out: Record<string, string> = {};
  const n = uri.length;
  const at = (i: number): string => (i < n ? uri[i]! : '');
  const store = (keyword: string, encoded: string): void => {
    storeOption(out, keyword, uriDecode(encoded));
  };

  const start = prefix;
  let p = start;
  // Look ahead for a user-credentials designator ('@' before any '/').
  while (p < n && uri[p] !== '@' && uri[p] !== '/') p++;
  if (at(p) === '@') {
    const credEnd = p;
    let e = start;
    while (uri[e] !== ':' && uri[e] !== '@') e++;
    const user = uri.slice(start, e);
    if (user !== '') store('user', user);
    if (uri[e] === ':') {
      const password = uri.slice(e + 1, credEnd);
      if (password !== '') store('password', password);
    }
    p = credEnd + 1;
  } else {
    p = start;
  }

  // One or more netloc[:port] pairs separated by commas.
  let hosts = '';
  let ports = '';
  let prevchar: string;
  for (;;) {
    let host: string;
    if (at(p) === '[') {
      const hostStart = ++p;
      while (p < n && uri[p] !== ']') p++;
      if (p >= n) {
        throw new OptionError(
          `end of string reached when looking for matching "]" in IPv6 host address in URI: "${uri}"`,
        );
      }
      if (p === hostStart) throw new OptionError(`IPv6 host address may not be empty in URI: "${uri}"`);
      host = uri.slice(hostStart, p);
      p++;
      const c = at(p);
      if (c !== '' && c !== ':' && c !== '/' && c !== '?' && c !== ',') {
        throw new OptionError(
          `unexpected character "${c}" at position ${bytePosition(uri, p)} in URI (expected ":" or "/"): "${uri}"`,
        );
      }
    } else {
      const hostStart = p;
      while (p < n && uri[p] !== ':' && uri[p] !== '/' && uri[p] !== '?' && uri[p] !== ',') p++;
      host = uri.slice(hostStart, p);
    }
    prevchar = at(p);
    hosts += host;
    if (prevchar === ':') {
      const portStart = ++p;
      while (p < n && uri[p] !== '/' && uri[p] !== '?' && uri[p] !== ',') p++;
      prevchar = at(p);
      ports += uri.slice(portStart, p);
    }
    if (prevchar !== ',') break;
    p++;
    hosts += ',';
    ports += ',';
  }
  if (hosts !== '') store('host', hosts);
  if (ports !== '') store('port', ports);

  if (prevchar !== '' && prevchar !== '?') {
    const dbStart = ++p;
    while (p < n && uri[p] !== '?') p++;
    prevchar = at(p);
    // An empty dbname is not stored: it would force the default and ignore PGDATABASE.
    const dbname = uri.slice(dbStart, p);
    if (dbname !== '') store('dbname', dbname);
  }
  if (prevchar !== '') parseParams(uri.slice(p + 1), out);
  return out;
}

/** conninfo_uri_parse_params: `key=value&...`, both sides percent-decoded, unknown keys rejected. */
function parseParams(params: string, out: Record<string, string>): void {
  const n = params.length;
  let p = 0;
  while (p < n) {
    const keyStart = p;
    let eq = -1;
    for (;;) {
      const c = p < n ? params[p] : '';
      if (c === '=') {
        if (eq >= 0) {
          throw new OptionError(
            `extra key/value separator "=" in URI query parameter: "${params.slice(keyStart, eq)}"`,
          );
        }
        eq = p++;
      } else if (c === '&' || c === '') {
        if (eq < 0) {
          throw new OptionError(
            `missing key/value separator "=" in URI query parameter: "${params.slice(keyStart, p)}"`,
          );
        }
        break;
      } else {
        p++;
      }
    }
    let keyword = uriDecode(params.slice(keyStart, eq));
    let value = uriDecode(params.slice(eq + 1, p));
    if (p < n) p++; // past '&'
    // JDBC compatibility.
    if (keyword === 'ssl' && value === 'true') {
      keyword = 'sslmode';
      value = 'require';
    }
    if (!storeOption(out, keyword, value, true)) {
      throw new OptionError(`invalid URI query parameter: "${keyword}"`);
    }
  }
}

/** libpq's parse_connection_string: a URI when it has a URI prefix, keyword/value otherwise. */
export const parseConnectionString = (s: string): Record<string, string> =>
  uriPrefixLength(s) !== 0 ? parseUri(s) : parseConninfo(s);
