/**
 * Realistic backend byte streams, built in memory with pgconn's own encoders so that every parser
 * under test reads exactly the same bytes. Generation is deterministic (seeded PRNG).
 *
 * Each stream records what a correct parser must see (message, row and null counts, total field
 * bytes and UTF-16 code units), so every run can be checked against it: a parser that skipped
 * work would be caught, which keeps the comparison fair.
 */
import { encodeBackend, encodeDataRow, type RowDescriptionField, Writer } from '@pgconn/core';

export type WorkloadId = 'datarow' | 'copy-lines' | 'copy-bulk';

export interface Stream {
  id: WorkloadId;
  /** One line for the report, e.g. "200000 DataRows, 6 text columns". */
  description: string;
  bytes: Uint8Array;
  /** Every message in the stream. */
  messages: number;
  /** DataRow or CopyData messages: the unit of "rows/s". */
  rows: number;
  /** DataRow fields, NULLs included. */
  fields: number;
  nulls: number;
  /** Payload bytes: non-NULL DataRow field bytes, or CopyData bytes. */
  payloadBytes: number;
  /** UTF-16 code units of the non-NULL DataRow fields once decoded (0 for COPY). */
  payloadChars: number;
}

/** mulberry32: small, fast and good enough to vary test data reproducibly. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// About one name in eight carries a non-ASCII letter, as a UTF8 database of people's names would.
const FIRST = (
  'Alice|Bob|Charlotte|David|Emma|François|Grace|Henry|Isabella|Jack|Katarzyna|Liam|' +
  'Maximilian|Noah|Olivia|Peter|Quentin|Rosalind|Sophia|Thomas|Ursula|Victor|William|Xavier|' +
  'Yasmin|Zoë|José|Mohammed|Hiroshi|Anastasia|Benjamin|Christopher'
).split('|');
const LAST = (
  'Smith|Johnson|Williams|Brown|Jones|Garcia|Miller|Davis|Rodriguez|Martinez|Hernandez|Lopez|' +
  'Gonzalez|Wilson|Anderson|Thomas|Taylor|Moore|Jackson|Martin|Lee|Thompson|White|Harris|' +
  'Müller|Nowak|Kowalski|Andersson|Nakamura|Fitzgerald|Okonkwo|Van der Berg'
).split('|');
const NOTES = [
  'prefers email contact',
  'VIP customer since 2019',
  'address needs verification',
  'requested invoice copy',
  'referred by partner program',
  'call back after 5pm',
  'duplicate of an older account, merged',
  'pending KYC documents',
];

const pad2 = (n: number): string => (n < 10 ? `0${n}` : `${n}`);

/** One row of the "customers" result, as the text a server would send for each column. */
interface Row {
  id: string;
  name: string;
  /** Only in the COPY stream, which copies a wider column list. */
  email: string;
  createdAt: string;
  amount: string;
  active: string;
  note: string | null;
}

function rowGenerator(seed: number): (i: number) => Row {
  const rnd = prng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  const base = Date.UTC(2019, 0, 1);
  const span = 5 * 365 * 86_400_000;
  return (i) => {
    let name = `${pick(FIRST)} ${pick(LAST)}`;
    while (name.length < 12) name += ` ${pick(LAST)}`;
    if (name.length > 30) name = name.slice(0, 30);
    const email = `${name.toLowerCase().replace(/[^a-z]+/g, '.')}${Math.floor(rnd() * 100)}@example.com`;
    const d = new Date(base + Math.floor(rnd() * span));
    const micros = String(Math.floor(rnd() * 1_000_000)).padStart(6, '0');
    // timestamptz output format with DateStyle=ISO and TimeZone=UTC.
    const createdAt =
      `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ` +
      `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}.${micros}+00`;
    const amount = (rnd() * 20_000 - 2_000).toFixed(2);
    const active = rnd() < 0.8 ? 't' : 'f';
    const r = rnd();
    const note =
      r < 0.35 ? null : r < 0.7 ? `${name.toLowerCase().replace(/[^a-z]+/g, '.')}@example.com` : pick(NOTES);
    return { id: String(i + 1), name, email, createdAt, amount, active, note };
  };
}

const COLUMNS: RowDescriptionField[] = [
  ['id', 23, 4, -1],
  ['name', 25, -1, -1],
  ['created_at', 1184, 8, -1],
  // numeric(12,2): typmod is ((precision << 16) | scale) + VARHDRSZ.
  ['amount', 1700, -1, ((12 << 16) | 2) + 4],
  ['active', 16, 1, -1],
  ['note', 25, -1, -1],
].map(([name, typeOid, typeSize, typeModifier], i) => ({
  name: name as string,
  tableOid: 16_384,
  columnAttr: i + 1,
  typeOid: typeOid as number,
  typeSize: typeSize as number,
  typeModifier: typeModifier as number,
  format: 0,
}));

const utf8 = new TextEncoder();

function finish(w: Writer, tag: string): void {
  encodeBackend(w, { type: 'CommandComplete', tag });
  encodeBackend(w, { type: 'ReadyForQuery', status: 'I' });
}

/**
 * The result of `SELECT id, name, created_at, amount, active, note FROM customers` in text format:
 * RowDescription, `rows` DataRows (about 125 bytes each on the wire), CommandComplete, ReadyForQuery.
 */
export function dataRowStream(rows: number, seed = 1): Stream {
  const w = new Writer(Math.max(1024, rows * 128));
  const next = rowGenerator(seed);
  encodeBackend(w, { type: 'RowDescription', fields: COLUMNS });
  let nulls = 0;
  let payloadBytes = 0;
  let payloadChars = 0;
  const fields: (Uint8Array | null)[] = new Array(COLUMNS.length);
  for (let i = 0; i < rows; i++) {
    const r = next(i);
    const values = [r.id, r.name, r.createdAt, r.amount, r.active, r.note];
    for (let c = 0; c < values.length; c++) {
      const v = values[c];
      if (v == null) {
        fields[c] = null;
        nulls++;
      } else {
        const b = utf8.encode(v);
        fields[c] = b;
        payloadBytes += b.length;
        payloadChars += v.length;
      }
    }
    encodeDataRow(w, fields);
  }
  finish(w, `SELECT ${rows}`);
  return {
    id: 'datarow',
    description: `${rows} DataRows, ${COLUMNS.length} text columns (int4, text, timestamptz, numeric, bool, NULL-able text)`,
    bytes: w.take(),
    messages: rows + 3,
    rows,
    fields: rows * COLUMNS.length,
    nulls,
    payloadBytes,
    payloadChars,
  };
}

/** Escapes a value for COPY's text format (backslash, tab, newline, carriage return). */
const copyEscape = (s: string): string =>
  s.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));

/**
 * `COPY customers (id, name, email, created_at, amount, active, note) TO STDOUT`: CopyOutResponse
 * (text), one CopyData per row as the server sends it (about 100 bytes each), CopyDone,
 * CommandComplete, ReadyForQuery.
 */
export function copyLinesStream(lines: number, seed = 2): Stream {
  const w = new Writer(Math.max(1024, lines * 112));
  const next = rowGenerator(seed);
  encodeBackend(w, {
    type: 'CopyOutResponse',
    format: 0,
    columnFormats: [0, 0, 0, 0, 0, 0, 0],
  });
  let payloadBytes = 0;
  for (let i = 0; i < lines; i++) {
    const r = next(i);
    const line =
      `${r.id}\t${copyEscape(r.name)}\t${r.email}\t${r.createdAt}\t${r.amount}\t${r.active}\t` +
      `${r.note === null ? '\\N' : copyEscape(r.note)}\n`;
    const b = utf8.encode(line);
    payloadBytes += b.length;
    encodeBackend(w, { type: 'CopyData', data: b });
  }
  encodeBackend(w, { type: 'CopyDone' });
  finish(w, `COPY ${lines}`);
  return {
    id: 'copy-lines',
    description: `${lines} CopyData, one ~${Math.round(payloadBytes / Math.max(1, lines))} B text line each`,
    bytes: w.take(),
    messages: lines + 4,
    rows: lines,
    fields: 0,
    nulls: 0,
    payloadBytes,
    payloadChars: 0,
  };
}

/**
 * `COPY ... TO STDOUT (FORMAT binary)` as a bulk transfer: CopyOutResponse (binary), `count`
 * CopyData of `size` bytes each, CopyDone, CommandComplete, ReadyForQuery.
 */
export function copyBulkStream(count: number, size = 64 * 1024, seed = 3): Stream {
  const w = new Writer(Math.max(1024, count * (size + 8)));
  const rnd = prng(seed);
  encodeBackend(w, { type: 'CopyOutResponse', format: 1, columnFormats: COLUMNS.map(() => 1) });
  const data = new Uint8Array(size);
  for (let i = 0; i < count; i++) {
    // Vary the bytes a little between messages; the parsers never look inside them.
    for (let j = 0; j < size; j += 997) data[j] = (rnd() * 256) | 0;
    encodeBackend(w, { type: 'CopyData', data });
  }
  encodeBackend(w, { type: 'CopyDone' });
  finish(w, `COPY ${count}`);
  return {
    id: 'copy-bulk',
    description: `${count} CopyData of ${size / 1024} KiB (binary bulk)`,
    bytes: w.take(),
    messages: count + 4,
    rows: count,
    fields: 0,
    nulls: 0,
    payloadBytes: count * size,
    payloadChars: 0,
  };
}
