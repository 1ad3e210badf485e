/**
 * What `pgconn serve` answers once a session is ready: enough SQL for real clients to run a command
 * (`select 1`, literals, `version()`, `current_user`, `show x`, `set x = y`, transaction verbs), a
 * COPY source shaped like `COPY (SELECT repeat('x', N) FROM generate_series(1, M)) TO STDOUT` and a
 * COPY sink (`COPY t FROM STDIN`) for the bench; an ErrorResponse for anything else. It is a test
 * double, not a database: it parses by pattern, never executes. Transaction state and the COPY
 * streams themselves belong to the session (session.ts).
 */
import type { BackendMessage, NoticeFields, RowDescriptionField } from '@pgconn/core';

const TEXT_OID = 25;
const INT4_OID = 23;
const INT8_OID = 20;
const NUMERIC_OID = 1700;
const BOOL_OID = 16;
const NAME_OID = 19;

/** PostgreSQL's MaxAllocSize - 1: repeat() refuses longer results ("requested length too large"). */
const MAX_TEXT_BYTES = 0x3fff_ffff - 1;

export interface SessionInfo {
  user: string;
  database: string;
  serverVersion: string;
  /** Settings SHOW reads and SET writes (the reported ParameterStatus set, plus what was SET). */
  settings: Map<string, string>;
}

/** One statement's answer: messages to send, or a COPY to run. */
export type Answer =
  | {
      kind: 'messages';
      messages: BackendMessage[];
      /** The statement failed (its messages end with an ErrorResponse). */
      failed?: boolean;
      /** A transaction verb: the session applies it to its transaction status. */
      transaction?: 'begin' | 'commit' | 'rollback';
    }
  /** COPY TO STDOUT: `rows` CopyData messages, each `unit` repeated `repeat` times, then '\n'. */
  | { kind: 'copy-out'; unit: Uint8Array; repeat: number; rows: number }
  | { kind: 'copy-in' };

const encoder = new TextEncoder();

const field = (name: string, typeOid: number, typeSize: number): RowDescriptionField => ({
  name,
  tableOid: 0,
  columnAttr: 0,
  typeOid,
  typeSize,
  typeModifier: -1,
  format: 0,
});

/** An ErrorResponse (or NoticeResponse with `notice`) with PostgreSQL's fields. */
export function errorResponse(code: string, message: string, severity = 'ERROR'): BackendMessage {
  const fields: NoticeFields = { severity, severityNonLocalized: severity, code, message };
  return { type: 'ErrorResponse', fields };
}

export function noticeResponse(code: string, message: string, severity = 'WARNING'): BackendMessage {
  const fields: NoticeFields = { severity, severityNonLocalized: severity, code, message };
  return { type: 'NoticeResponse', fields };
}

const failure = (code: string, message: string): Answer => ({
  kind: 'messages',
  messages: [errorResponse(code, message)],
  failed: true,
});

/**
 * Splits a simple-query string into statements on `;` outside quotes, dollar quotes and comments
 * (a simple Query may hold several). Comments are replaced by a space; empty statements are dropped,
 * so a string of only whitespace, comments and semicolons yields none (EmptyQueryResponse).
 */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let cur = '';
  const n = sql.length;
  let i = 0;
  const identChar = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_$]/.test(c);
  while (i < n) {
    const ch = sql[i]!;
    if (ch === "'" || ch === '"') {
      // E'...' strings take backslash escapes; elsewhere a doubled quote simply re-enters the scan.
      const escapes = ch === "'" && /[eE]/.test(sql[i - 1] ?? '') && !identChar(sql[i - 2]);
      let j = i + 1;
      while (j < n && sql[j] !== ch) j += escapes && sql[j] === '\\' ? 2 : 1;
      const stop = Math.min(j + 1, n);
      cur += sql.slice(i, stop);
      i = stop;
      continue;
    }
    if (ch === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl === -1 ? n : nl;
      cur += ' ';
      continue;
    }
    if (ch === '/' && sql[i + 1] === '*') {
      // Block comments nest in PostgreSQL.
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (sql[i] === '*' && sql[i + 1] === '/') {
          depth--;
          i += 2;
        } else i++;
      }
      cur += ' ';
      continue;
    }
    if (ch === '$' && !identChar(sql[i - 1])) {
      const tag = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64))?.[0];
      if (tag) {
        const end = sql.indexOf(tag, i + tag.length);
        const stop = end === -1 ? n : end + tag.length;
        cur += sql.slice(i, stop);
        i = stop;
        continue;
      }
    }
    if (ch === ';') {
      out.push(cur);
      cur = '';
      i++;
      continue;
    }
    cur += ch;
    i++;
  }
  out.push(cur);
  return out.map((s) => s.trim()).filter((s) => s.length > 0);
}

interface Literal {
  name: string;
  value: string | null;
  typeOid: number;
  typeSize: number;
}

/** A select-list item we can evaluate: a literal, a cast literal, or one of a few functions. */
function evaluate(expr: string, session: SessionInfo): Literal | null {
  const m = /^(.*?)(?:\s+as\s+("?)([A-Za-z_][A-Za-z0-9_]*)\2)?$/is.exec(expr.trim());
  if (!m) return null;
  const body = m[1]!.trim();
  const alias = m[3];
  const named = (name: string, value: string | null, typeOid: number, typeSize: number): Literal => ({
    name: alias ?? name,
    value,
    typeOid,
    typeSize,
  });
  if (/^-?\d+$/.test(body)) {
    const n = BigInt(body);
    const int4 = n >= -2147483648n && n <= 2147483647n;
    if (!int4 && (n < -(2n ** 63n) || n >= 2n ** 63n)) return named('?column?', body, NUMERIC_OID, -1);
    return named('?column?', n.toString(), int4 ? INT4_OID : INT8_OID, int4 ? 4 : 8);
  }
  if (/^-?\d+\.\d+$/.test(body)) return named('?column?', body, NUMERIC_OID, -1);
  const str = /^'((?:[^']|'')*)'(?:::text)?$/s.exec(body);
  if (str) return named('?column?', str[1]!.replaceAll("''", "'"), TEXT_OID, -1);
  if (/^(true|false)$/i.test(body))
    return named('bool', body.toLowerCase() === 'true' ? 't' : 'f', BOOL_OID, 1);
  if (/^null$/i.test(body)) return named('?column?', null, TEXT_OID, -1);
  if (/^version\s*\(\s*\)$/i.test(body)) {
    return named('version', `PostgreSQL ${session.serverVersion} (pgconn serve)`, TEXT_OID, -1);
  }
  if (/^(current_user|session_user|user)$/i.test(body))
    return named(body.toLowerCase(), session.user, NAME_OID, 64);
  if (/^current_database\s*\(\s*\)$/i.test(body))
    return named('current_database', session.database, NAME_OID, 64);
  return null;
}

// The character must be one COPY's text format sends as is (no backslash, no control character).
const COPY_SOURCE =
  /^copy\s*\(\s*select\s+repeat\s*\(\s*'([^'\\\p{Cc}])'\s*,\s*(\d+)\s*\)\s+from\s+generate_series\s*\(\s*1\s*,\s*(\d+)\s*\)\s*\)\s+to\s+stdout$/isu;
const COPY_SINK = /^copy\s+[A-Za-z_][A-Za-z0-9_.]*(\s*\([^)]*\))?\s+from\s+stdin$/is;

/** Answers one statement (transaction state is the caller's). */
export function answer(statement: string, session: SessionInfo): Answer {
  const sql = statement.trim();
  const copyOut = COPY_SOURCE.exec(sql);
  if (copyOut) {
    const unit = encoder.encode(copyOut[1]!);
    const count = Number(copyOut[2]);
    const rows = Number(copyOut[3]);
    if (!Number.isSafeInteger(rows)) return failure('22003', 'bigint out of range');
    if (!Number.isSafeInteger(count) || count * unit.length > MAX_TEXT_BYTES) {
      return failure('54000', 'requested length too large');
    }
    return { kind: 'copy-out', unit, repeat: count, rows };
  }
  if (COPY_SINK.test(sql)) return { kind: 'copy-in' };

  const verb = /^(begin|start\s+transaction|commit|end|rollback|abort)\b/i.exec(sql);
  if (verb) {
    const v = verb[1]!.toLowerCase();
    const transaction =
      v === 'begin' || v.startsWith('start')
        ? 'begin'
        : v === 'commit' || v === 'end'
          ? 'commit'
          : 'rollback';
    const tag = transaction.toUpperCase();
    return { kind: 'messages', messages: [{ type: 'CommandComplete', tag }], transaction };
  }

  const show = /^show\s+([A-Za-z_][A-Za-z0-9_.]*)$/i.exec(sql);
  if (show) {
    const name = show[1]!.toLowerCase();
    const value = setting(session.settings, name);
    if (value === undefined) return failure('42704', `unrecognized configuration parameter "${show[1]}"`);
    return rows([field(name, TEXT_OID, -1)], [[value[1]]], 'SHOW');
  }

  const set =
    /^set\s+(?:session\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*(?:=|\s+to\s+)\s*(?:'((?:[^']|'')*)'|([A-Za-z0-9_.+-]+))$/i.exec(
      sql,
    );
  if (set) {
    const name = set[1]!;
    const value = set[2] !== undefined ? set[2].replaceAll("''", "'") : set[3]!;
    if (name.toLowerCase() === 'client_encoding' && !/^(utf-?8|unicode)$/i.test(value)) {
      return failure('0A000', 'pgconn serve only speaks UTF8');
    }
    const key = setting(session.settings, name)?.[0] ?? name.toLowerCase();
    const shown = key === 'client_encoding' ? 'UTF8' : value;
    session.settings.set(key, shown);
    return { kind: 'messages', messages: [{ type: 'CommandComplete', tag: 'SET' }] };
  }

  const select = /^select\s+(.+)$/is.exec(sql);
  if (select) {
    const items = splitList(select[1]!);
    const lits = items.map((i) => evaluate(i, session));
    if (lits.every((l): l is Literal => l !== null)) {
      return rows(
        lits.map((l) => field(l.name, l.typeOid, l.typeSize)),
        [lits.map((l) => l.value)],
        'SELECT',
      );
    }
  }
  return failure('0A000', `pgconn serve cannot answer this query: ${sql.slice(0, 80)}`);
}

/** A setting by case-insensitive name: [stored name, value]. */
function setting(settings: Map<string, string>, name: string): [string, string] | undefined {
  const lower = name.toLowerCase();
  for (const entry of settings) if (entry[0].toLowerCase() === lower) return entry;
  return undefined;
}

function rows(fields: RowDescriptionField[], values: (string | null)[][], tag: 'SELECT' | 'SHOW'): Answer {
  const messages: BackendMessage[] = [{ type: 'RowDescription', fields }];
  for (const row of values) {
    messages.push({ type: 'DataRow', fields: row.map((v) => (v === null ? null : encoder.encode(v))) });
  }
  messages.push({ type: 'CommandComplete', tag: tag === 'SELECT' ? `SELECT ${values.length}` : tag });
  return { kind: 'messages', messages };
}

/** Splits a select list on commas outside quotes and parentheses. */
function splitList(list: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = false;
  let cur = '';
  for (const ch of list) {
    if (quote) {
      if (ch === "'") quote = false;
    } else if (ch === "'") quote = true;
    else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  out.push(cur);
  return out;
}
