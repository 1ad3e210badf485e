/**
 * Startup-parameter helpers for the server side: the GUC_REPORT set sent as ParameterStatus after
 * AuthenticationOk (reference §6.3), PostgreSQL's parse_bool for `replication`, pg_clean_ascii for
 * application_name and the NAMEDATALEN cut of user and database names.
 */
import { NAMEDATALEN } from './auth.ts';

/** server_version reported when the configuration does not set one. */
export const DEFAULT_SERVER_VERSION = '18.0';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8');

/**
 * The ParameterStatus values PostgreSQL 18 reports for every GUC_REPORT variable, in its defaults.
 * Only application_name and session_authorization depend on the session; client_encoding is always
 * UTF8 because this server never converts encodings (the client's request stays visible in the
 * session's startup parameters). `overrides` replace a value, or drop it with null.
 */
export function reportedParameters(
  session: { user: string; parameters: ReadonlyMap<string, string> },
  options: { scramIterations: number; overrides?: Readonly<Record<string, string | null>> },
): Map<string, string> {
  const out = new Map<string, string>([
    ['application_name', cleanAscii(session.parameters.get('application_name') ?? '')],
    ['client_encoding', 'UTF8'],
    ['DateStyle', 'ISO, MDY'],
    ['default_transaction_read_only', 'off'],
    ['in_hot_standby', 'off'],
    ['integer_datetimes', 'on'],
    ['IntervalStyle', 'postgres'],
    ['is_superuser', 'off'],
    ['scram_iterations', String(options.scramIterations)],
    ['search_path', '"$user", public'],
    ['server_encoding', 'UTF8'],
    ['server_version', DEFAULT_SERVER_VERSION],
    ['session_authorization', session.user],
    ['standard_conforming_strings', 'on'],
    ['TimeZone', 'UTC'],
  ]);
  for (const [name, value] of Object.entries(options.overrides ?? {})) {
    if (value === null) out.delete(name);
    else out.set(name, value);
  }
  return out;
}

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/**
 * pg_clean_ascii (PostgreSQL 16+), applied to application_name by its GUC check hook: every byte
 * outside printable ASCII becomes `\xNN`, so nothing a client sends can put control characters or
 * invalid text into logs or into other sessions' views.
 */
export function cleanAscii(s: string): string {
  // Nearly every string is already clean (serve passes each log line through here): a regex test
  // costs a fifth to a tenth of the byte walk below (100 characters, Node / Bun / Deno).
  if (PRINTABLE_ASCII.test(s)) return s;
  let out = '';
  for (const b of encoder.encode(s)) {
    out += b >= 0x20 && b <= 0x7e ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/**
 * PostgreSQL's parse_bool_with_len: case-insensitive prefixes of true/false/yes/no, on/off (at least
 * two letters, "o" alone is ambiguous), and exactly "1"/"0". Null when the value is none of these.
 */
export function parseBool(value: string): boolean | null {
  const v = value.toLowerCase();
  const n = v.length;
  if (n === 0) return null;
  const prefixOf = (word: string, min = 1): boolean => n >= min && word.startsWith(v);
  switch (v[0]) {
    case 't':
      return prefixOf('true') ? true : null;
    case 'f':
      return prefixOf('false') ? false : null;
    case 'y':
      return prefixOf('yes') ? true : null;
    case 'n':
      return prefixOf('no') ? false : null;
    case 'o':
      if (prefixOf('on', 2)) return true;
      if (prefixOf('off', 2)) return false;
      return null;
    case '1':
      return n === 1 ? true : null;
    case '0':
      return n === 1 ? false : null;
    default:
      return null;
  }
}

/**
 * Cuts a user or database name to NAMEDATALEN - 1 (63) UTF-8 bytes, as ProcessStartupPacket does so
 * that over-long names fail the lookup cleanly. PostgreSQL cuts at the byte; we back off to a
 * character boundary so the name stays valid UTF-8.
 */
export function truncateName(name: string): string {
  const bytes = encoder.encode(name);
  const max = NAMEDATALEN - 1;
  if (bytes.length <= max) return name;
  let end = max;
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return decoder.decode(bytes.subarray(0, end));
}
