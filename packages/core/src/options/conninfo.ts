/**
 * Keyword/value connection strings, as libpq's conninfo_parse (fe-connect.c):
 *
 *   host=db.example.com port = 5433 password='it\'s' options='-c geqo=off'
 *
 * Whitespace (C isspace) separates pairs and may surround `=`. A value is either unquoted (ends at
 * whitespace) or single-quoted; in both forms a backslash takes the next character literally. An
 * empty value is written `''` (an unquoted empty value swallows the next token, exactly as libpq:
 * `host= port=1` sets host to "port=1"). A later setting of a keyword overrides an earlier one.
 */
import { OptionError } from '../errors.ts';
import { isCSpace, isKeyword } from './keywords.ts';

/** The URI designators (uri_designator, short_uri_designator). */
export const URI_PREFIXES = ['postgresql://', 'postgres://'] as const;

/** Length of the URI prefix `s` starts with, 0 when it is not a URI (uri_prefix_length). */
export function uriPrefixLength(s: string): number {
  for (const prefix of URI_PREFIXES) if (s.startsWith(prefix)) return prefix.length;
  return 0;
}

/** libpq's recognized_connection_string: a URI, or anything containing `=`. */
export const isConnectionString = (s: string): boolean => uriPrefixLength(s) !== 0 || s.includes('=');

/** C strings end at NUL; rather than silently dropping whatever follows one, refuse the input. */
export function rejectNul(s: string, what: string): void {
  if (s.includes('\0')) throw new OptionError(`${what} contains a NUL character`);
}

/**
 * conninfo_storeval: the legacy `requiressl` keyword becomes sslmode (`1...` → require, anything
 * else → prefer); an unknown keyword fails with `invalid connection option`.
 * Returns false (without throwing) for an unknown keyword when `ignoreMissing` is set.
 */
export function storeOption(
  out: Record<string, string>,
  keyword: string,
  value: string,
  ignoreMissing = false,
): boolean {
  if (keyword === 'requiressl') {
    keyword = 'sslmode';
    value = value.startsWith('1') ? 'require' : 'prefer';
  }
  if (!isKeyword(keyword)) {
    if (ignoreMissing) return false;
    throw new OptionError(`invalid connection option "${keyword}"`);
  }
  out[keyword] = value;
  return true;
}

/** Parses a keyword/value connection string; only the keywords it sets are returned. */
export function parseConninfo(s: string): Record<string, string> {
  rejectNul(s, 'connection info string');
  const out: Record<string, string> = {};
  const n = s.length;
  let i = 0;
  while (i < n) {
    // Skip blanks before the parameter name.
    if (isCSpace(s[i])) {
      i++;
      continue;
    }
    // The parameter name ends at '=' or at whitespace (which may be followed by more whitespace).
    const nameStart = i;
    let nameEnd = -1;
    while (i < n) {
      const c = s[i];
      if (c === '=') break;
      if (isCSpace(c)) {
        nameEnd = i;
        i++;
        while (i < n && isCSpace(s[i])) i++;
        break;
      }
      i++;
    }
    const name = s.slice(nameStart, nameEnd < 0 ? i : nameEnd);
    if (s[i] !== '=') throw new OptionError(`missing "=" after "${name}" in connection info string`);
    i++;
    // Skip blanks after the '='.
    while (i < n && isCSpace(s[i])) i++;

    let value = '';
    if (s[i] !== "'") {
      while (i < n) {
        const c = s[i]!;
        if (isCSpace(c)) {
          i++;
          break;
        }
        if (c === '\\') {
          i++;
          if (i < n) value += s[i++];
        } else {
          value += c;
          i++;
        }
      }
    } else {
      i++;
      for (;;) {
        if (i >= n) throw new OptionError('unterminated quoted string in connection info string');
        const c = s[i]!;
        if (c === '\\') {
          i++;
          if (i < n) value += s[i++];
          continue;
        }
        i++;
        if (c === "'") break;
        value += c;
      }
    }
    storeOption(out, name, value);
  }
  return out;
}

const needsQuoting = /[\s'\\]/;

/** Formats options as a keyword/value string that parseConninfo reads back unchanged. */
export function formatConninfo(options: Readonly<Record<string, string | undefined>>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    const quoted =
      value === '' || needsQuoting.test(value) ? `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'` : value;
    parts.push(`${key}=${quoted}`);
  }
  return parts.join(' ');
}
