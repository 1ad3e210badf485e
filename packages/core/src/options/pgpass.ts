/**
 * The password file (`~/.pgpass`, `passfile`, PGPASSFILE), as libpq's passwordFromFile and
 * pwdfMatchesString (fe-connect.c). The caller reads the file (and its mode); this parses the text
 * and looks passwords up.
 *
 *   hostname:port:database:username:password
 *
 * A field of exactly `*` matches anything; `\` makes the next character literal (`\:`, `\\`, and
 * also `\*` for a literal asterisk). Lines whose first character is `#` are comments. Trailing CR
 * and LF are stripped. The first matching line wins. The password runs to the next unescaped `:`
 * (any further fields are ignored).
 */
import { DEFAULT_PGSOCKET_DIR, DEFAULT_PORT } from './keywords.ts';

export interface PgpassEntry {
  /** null: the `*` wildcard. */
  host: string | null;
  port: string | null;
  database: string | null;
  user: string | null;
  password: string;
  /** 1-based line number in the file. */
  line: number;
}

/** Reads one match field starting at `i`; null when the line ends before the field's `:`. */
function readField(line: string, i: number): { value: string | null; next: number } | null {
  if (line[i] === '*' && line[i + 1] === ':') return { value: null, next: i + 2 };
  let value = '';
  while (i < line.length) {
    let c = line[i]!;
    if (c === '\\') {
      i++;
      if (i >= line.length) return null;
      c = line[i]!;
    } else if (c === ':') {
      return { value, next: i + 1 };
    }
    value += c;
    i++;
  }
  return null;
}

/** De-escapes the password field: up to the first unescaped `:`; a trailing lone `\` is kept. */
function readPassword(line: string, i: number): string {
  let out = '';
  while (i < line.length && line[i] !== ':') {
    if (line[i] === '\\' && i + 1 < line.length) i++;
    out += line[i];
    i++;
  }
  return out;
}

/**
 * Parses a password file. Comment lines, empty lines and lines with fewer than five fields (which
 * libpq can never match) are left out.
 */
export function parsePgpass(text: string): PgpassEntry[] {
  const entries: PgpassEntry[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    let line = lines[index]!;
    if (line.startsWith('#')) continue;
    line = line.replace(/[\r\n]+$/, '');
    if (line === '') continue;
    const fields: Array<string | null> = [];
    let pos = 0;
    let ok = true;
    for (let f = 0; f < 4; f++) {
      const field = readField(line, pos);
      if (field === null) {
        ok = false;
        break;
      }
      fields.push(field.value);
      pos = field.next;
    }
    if (!ok) continue;
    entries.push({
      host: fields[0]!,
      port: fields[1]!,
      database: fields[2]!,
      user: fields[3]!,
      password: readPassword(line, pos),
      line: index + 1,
    });
  }
  return entries;
}

export interface PgpassKey {
  /** `host` when set, else `hostaddr`; '' or a path equal to the default socket dir means localhost. */
  host?: string;
  /** As given (a string is compared verbatim); '' or undefined means 5432. */
  port?: string | number;
  dbname: string;
  user: string;
  /** The default Unix-socket directory (DEFAULT_PGSOCKET_DIR); `/tmp` unless given. */
  defaultSocketDir?: string;
}

const isUnixSocketPath = (path: string): boolean => path.startsWith('/') || path.startsWith('@');

/** The password of the first entry matching `key`, or undefined. */
export function lookupPgpass(entries: readonly PgpassEntry[], key: PgpassKey): string | undefined {
  if (key.dbname === '' || key.user === '') return undefined;
  let host = key.host ?? '';
  if (host === '') host = 'localhost';
  else if (isUnixSocketPath(host) && host === (key.defaultSocketDir ?? DEFAULT_PGSOCKET_DIR))
    host = 'localhost';
  let port = key.port === undefined ? '' : String(key.port);
  if (port === '') port = String(DEFAULT_PORT);
  const matches = (field: string | null, token: string): boolean => field === null || field === token;
  for (const entry of entries) {
    if (
      matches(entry.host, host) &&
      matches(entry.port, port) &&
      matches(entry.database, key.dbname) &&
      matches(entry.user, key.user)
    ) {
      return entry.password;
    }
  }
  return undefined;
}

/** libpq ignores a password file with any group or world permission bit (mode & 077). */
export const pgpassPermissionsOk = (mode: number): boolean => (mode & 0o077) === 0;

/** libpq's warning (printed to stderr) when it ignores a password file for its permissions. */
export const pgpassPermissionsWarning = (path: string): string =>
  `WARNING: password file "${path}" has group or world access; permissions should be u=rw (0600) or less`;

/** libpq's warning when the password file is not a regular file. */
export const pgpassNotPlainFileWarning = (path: string): string =>
  `WARNING: password file "${path}" is not a plain file`;

/** Appended to an authentication failure (SQLSTATE 28P01) when the password came from the file. */
export const passwordFromFileHint = (path: string): string => `password retrieved from file "${path}"`;
