import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BackendMessage,
  type BackendMessageType,
  decodeBackend,
  encodeBackend,
  encodeDataRow,
} from '../src/codec/backend.ts';
import { BackendType } from '../src/codec/constants.ts';
import { type Frame, Framer } from '../src/codec/framer.ts';
import { Writer } from '../src/codec/writer.ts';
import { type NoticeFields, ProtocolError } from '../src/errors.ts';
import { fcParams } from './fc.ts';

/**
 * Wire bytes written by hand: two-digit hex bytes, plus 'quoted' ASCII text for readability.
 * Lengths are computed by hand, so they check the encoder's back-patching independently.
 */
function wire(spec: string): Uint8Array {
  const out: number[] = [];
  for (const tok of spec.match(/'[^']*'|[0-9a-fA-F]{2}|\S/g) ?? []) {
    if (tok.startsWith("'")) for (const ch of tok.slice(1, -1)) out.push(ch.charCodeAt(0));
    else if (/^[0-9a-fA-F]{2}$/.test(tok)) out.push(Number.parseInt(tok, 16));
    else throw new Error(`bad wire token ${tok}`);
  }
  return Uint8Array.from(out);
}

const toHex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');

function encode(...msgs: BackendMessage[]): Uint8Array {
  const w = new Writer(8);
  for (const m of msgs) encodeBackend(w, m);
  return w.take();
}

/** Frames and decodes a byte stream that must hold whole messages only. */
function decodeAll(bytes: Uint8Array): BackendMessage[] {
  const f = new Framer();
  f.push(bytes);
  const out: BackendMessage[] = [];
  let m: Frame | null;
  // biome-ignore lint/suspicious/noAssignInExpressions: idiomatic drain loop
  while ((m = f.next()) !== null) out.push(decodeBackend(m));
  expect(f.buffered).toBe(0);
  return out;
}

const decodeBody = (type: number, body: Uint8Array | number[]): BackendMessage =>
  decodeBackend({ type, body: body instanceof Uint8Array ? body : Uint8Array.from(body) });

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const range = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => i);
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

const SCRAM = "'SCRAM-SHA-256'";

/** One golden case per message shape: [label, message, hand-written wire bytes]. */
const golden: Array<[string, BackendMessage, string]> = [
  ['AuthenticationOk', { type: 'AuthenticationOk' }, '52 00 00 00 08 00 00 00 00'],
  ['AuthenticationKerberosV5', { type: 'AuthenticationKerberosV5' }, '52 00 00 00 08 00 00 00 02'],
  [
    'AuthenticationCleartextPassword',
    { type: 'AuthenticationCleartextPassword' },
    '52 00 00 00 08 00 00 00 03',
  ],
  [
    'AuthenticationMD5Password',
    { type: 'AuthenticationMD5Password', salt: bytes(0x9a, 0x01, 0xff, 0x7e) },
    '52 00 00 00 0c 00 00 00 05 9a 01 ff 7e',
  ],
  ['AuthenticationGSS', { type: 'AuthenticationGSS' }, '52 00 00 00 08 00 00 00 07'],
  [
    'AuthenticationGSSContinue',
    { type: 'AuthenticationGSSContinue', data: bytes(0xaa, 0xbb, 0xcc) },
    '52 00 00 00 0b 00 00 00 08 aa bb cc',
  ],
  ['AuthenticationSSPI', { type: 'AuthenticationSSPI' }, '52 00 00 00 08 00 00 00 09'],
  [
    'AuthenticationSASL',
    { type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS'] },
    `52 00 00 00 2a 00 00 00 0a ${SCRAM} 00 ${SCRAM} '-PLUS' 00 00`,
  ],
  [
    'AuthenticationSASLContinue',
    { type: 'AuthenticationSASLContinue', data: ascii('r=abc') },
    "52 00 00 00 0d 00 00 00 0b 'r=abc'",
  ],
  [
    'AuthenticationSASLFinal',
    { type: 'AuthenticationSASLFinal', data: ascii('v=xyz') },
    "52 00 00 00 0d 00 00 00 0c 'v=xyz'",
  ],
  [
    'BackendKeyData (3.0, 4-byte key)',
    { type: 'BackendKeyData', processId: 1234, secretKey: bytes(0xde, 0xad, 0xbe, 0xef) },
    '4b 00 00 00 0c 00 00 04 d2 de ad be ef',
  ],
  [
    'BackendKeyData (3.2, 32-byte key)',
    { type: 'BackendKeyData', processId: 1234, secretKey: range(32) },
    `4b 00 00 00 28 00 00 04 d2 ${toHex(range(32))}`,
  ],
  ['BindComplete', { type: 'BindComplete' }, '32 00 00 00 04'],
  ['CloseComplete', { type: 'CloseComplete' }, '33 00 00 00 04'],
  ['CommandComplete', { type: 'CommandComplete', tag: 'SELECT 1' }, "43 00 00 00 0d 'SELECT 1' 00"],
  ['CopyData', { type: 'CopyData', data: bytes(1, 2, 3) }, '64 00 00 00 07 01 02 03'],
  ['CopyDone', { type: 'CopyDone' }, '63 00 00 00 04'],
  [
    'CopyInResponse',
    { type: 'CopyInResponse', format: 0, columnFormats: [0, 0] },
    '47 00 00 00 0b 00 00 02 00 00 00 00',
  ],
  [
    'CopyOutResponse',
    { type: 'CopyOutResponse', format: 1, columnFormats: [1] },
    '48 00 00 00 09 01 00 01 00 01',
  ],
  ['CopyBothResponse', { type: 'CopyBothResponse', format: 0, columnFormats: [] }, '57 00 00 00 07 00 00 00'],
  [
    'DataRow',
    { type: 'DataRow', fields: [ascii('1'), null, new Uint8Array(0)] },
    "44 00 00 00 13 00 03 00 00 00 01 '1' ff ff ff ff 00 00 00 00",
  ],
  ['DataRow (no columns)', { type: 'DataRow', fields: [] }, '44 00 00 00 06 00 00'],
  ['EmptyQueryResponse', { type: 'EmptyQueryResponse' }, '49 00 00 00 04'],
  [
    'ErrorResponse',
    {
      type: 'ErrorResponse',
      fields: {
        severity: 'ERROR',
        severityNonLocalized: 'ERROR',
        code: '42P01',
        message: 'relation "x" does not exist',
        position: '15',
        file: 'parse_relation.c',
        line: '1392',
        routine: 'parserOpenTable',
      },
    },
    "45 00 00 00 64 53 'ERROR' 00 56 'ERROR' 00 43 '42P01' 00 4d 'relation \"x\" does not exist' 00 " +
      "50 '15' 00 46 'parse_relation.c' 00 4c '1392' 00 52 'parserOpenTable' 00 00",
  ],
  [
    'NoticeResponse (with an unknown field code)',
    {
      type: 'NoticeResponse',
      fields: {
        severity: 'NOTICE',
        severityNonLocalized: 'NOTICE',
        code: '00000',
        message: 'hi',
        unknown: { X: 'y' },
      },
    },
    "4e 00 00 00 23 53 'NOTICE' 00 56 'NOTICE' 00 43 '00000' 00 4d 'hi' 00 58 'y' 00 00",
  ],
  ['NoticeResponse (no fields)', { type: 'NoticeResponse', fields: {} }, '4e 00 00 00 05 00'],
  [
    'FunctionCallResponse',
    { type: 'FunctionCallResponse', result: bytes(0x2a) },
    '56 00 00 00 09 00 00 00 01 2a',
  ],
  [
    'FunctionCallResponse (NULL)',
    { type: 'FunctionCallResponse', result: null },
    '56 00 00 00 08 ff ff ff ff',
  ],
  [
    'NegotiateProtocolVersion',
    { type: 'NegotiateProtocolVersion', version: 0x0003_0000, unrecognizedOptions: ['_pq_.foo'] },
    "76 00 00 00 15 00 03 00 00 00 00 00 01 '_pq_.foo' 00",
  ],
  ['NoData', { type: 'NoData' }, '6e 00 00 00 04'],
  [
    'NotificationResponse',
    { type: 'NotificationResponse', processId: 42, channel: 'ch', payload: 'hello' },
    "41 00 00 00 11 00 00 00 2a 'ch' 00 'hello' 00",
  ],
  [
    'ParameterDescription',
    { type: 'ParameterDescription', typeOids: [23, 25] },
    '74 00 00 00 0e 00 02 00 00 00 17 00 00 00 19',
  ],
  [
    'ParameterStatus',
    { type: 'ParameterStatus', name: 'client_encoding', value: 'UTF8' },
    "53 00 00 00 19 'client_encoding' 00 'UTF8' 00",
  ],
  ['ParseComplete', { type: 'ParseComplete' }, '31 00 00 00 04'],
  ['PortalSuspended', { type: 'PortalSuspended' }, '73 00 00 00 04'],
  ['ReadyForQuery (idle)', { type: 'ReadyForQuery', status: 'I' }, '5a 00 00 00 05 49'],
  ['ReadyForQuery (in transaction)', { type: 'ReadyForQuery', status: 'T' }, '5a 00 00 00 05 54'],
  ['ReadyForQuery (failed transaction)', { type: 'ReadyForQuery', status: 'E' }, '5a 00 00 00 05 45'],
  [
    'RowDescription',
    {
      type: 'RowDescription',
      fields: [
        { name: 'id', tableOid: 16384, columnAttr: 1, typeOid: 23, typeSize: 4, typeModifier: -1, format: 0 },
      ],
    },
    "54 00 00 00 1b 00 01 'id' 00 00 00 40 00 00 01 00 00 00 17 00 04 ff ff ff ff 00 00",
  ],
];

const ALL_TYPES: BackendMessageType[] = [
  'AuthenticationOk',
  'AuthenticationKerberosV5',
  'AuthenticationCleartextPassword',
  'AuthenticationMD5Password',
  'AuthenticationGSS',
  'AuthenticationGSSContinue',
  'AuthenticationSSPI',
  'AuthenticationSASL',
  'AuthenticationSASLContinue',
  'AuthenticationSASLFinal',
  'BackendKeyData',
  'BindComplete',
  'CloseComplete',
  'CommandComplete',
  'CopyData',
  'CopyDone',
  'CopyInResponse',
  'CopyOutResponse',
  'CopyBothResponse',
  'DataRow',
  'EmptyQueryResponse',
  'ErrorResponse',
  'NoticeResponse',
  'FunctionCallResponse',
  'NegotiateProtocolVersion',
  'NoData',
  'NotificationResponse',
  'ParameterDescription',
  'ParameterStatus',
  'ParseComplete',
  'PortalSuspended',
  'ReadyForQuery',
  'RowDescription',
];

/** Messages whose trailing data is open-ended, so a prefix or an extra byte can still be valid. */
const OPEN_ENDED = new Set<BackendMessageType>([
  'CopyData',
  'AuthenticationGSSContinue',
  'AuthenticationSASLContinue',
  'AuthenticationSASLFinal',
  'BackendKeyData',
]);

const expectProtocolError = (fn: () => unknown, pattern?: RegExp): void => {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a ProtocolError').toBeInstanceOf(ProtocolError);
  if (pattern) expect((caught as Error).message).toMatch(pattern);
};

describe('backend codec: golden bytes', () => {
  it('has a golden case for every message type', () => {
    const covered = new Set(golden.map(([, m]) => m.type));
    expect([...covered].sort()).toEqual([...ALL_TYPES].sort());
  });

  for (const [label, msg, spec] of golden) {
    it(`encodes and decodes ${label}`, () => {
      const expected = wire(spec);
      expect(toHex(encode(msg))).toBe(toHex(expected));
      expect(decodeAll(expected)).toEqual([msg]);
    });
  }

  it('encodes notice fields in the stable order S V C M D H P p q W s t c d n F L R, then unknown', () => {
    // Built in reverse so insertion order cannot explain the output order.
    const keys: Array<[Exclude<keyof NoticeFields, 'unknown'>, string]> = [
      ['severity', 'S'],
      ['severityNonLocalized', 'V'],
      ['code', 'C'],
      ['message', 'M'],
      ['detail', 'D'],
      ['hint', 'H'],
      ['position', 'P'],
      ['internalPosition', 'p'],
      ['internalQuery', 'q'],
      ['where', 'W'],
      ['schema', 's'],
      ['table', 't'],
      ['column', 'c'],
      ['dataType', 'd'],
      ['constraint', 'n'],
      ['file', 'F'],
      ['line', 'L'],
      ['routine', 'R'],
    ];
    const fields: NoticeFields = { unknown: { Y: 'y' } };
    for (const [key, code] of [...keys].reverse()) fields[key] = code.toLowerCase() + code;
    const out = encode({ type: 'ErrorResponse', fields });
    const body = out.subarray(5);
    const codes: string[] = [];
    for (let i = 0; body[i] !== 0; ) {
      codes.push(String.fromCharCode(body[i]!));
      i = body.indexOf(0, i + 1) + 1;
    }
    expect(codes.join('')).toBe('SVCMDHPpqWstcdnFLRY');
    const decoded = decodeAll(out)[0];
    expect(decoded).toEqual({ type: 'ErrorResponse', fields });
  });

  it('returns zero-copy views into the pushed chunk', () => {
    const chunk = encode(
      { type: 'DataRow', fields: [bytes(7, 8, 9), null] },
      { type: 'CopyData', data: bytes(1, 2) },
      { type: 'BackendKeyData', processId: 1, secretKey: range(32) },
    );
    const [row, copy, key] = decodeAll(chunk);
    if (row?.type !== 'DataRow' || copy?.type !== 'CopyData' || key?.type !== 'BackendKeyData') {
      throw new Error('unexpected messages');
    }
    expect(row.fields[0]!.buffer).toBe(chunk.buffer);
    expect(row.fields[0]!.byteOffset).toBe(chunk.byteOffset + 11);
    expect(copy.data.buffer).toBe(chunk.buffer);
    expect(key.secretKey.buffer).toBe(chunk.buffer);
  });

  it('decodes DataRow fields that start at a non-zero byteOffset of a larger buffer', () => {
    const inner = wire("00 02 00 00 00 02 'ab' 00 00 00 01 'c'");
    const outer = new Uint8Array(inner.length + 7);
    outer.set(inner, 3);
    const msg = decodeBody(BackendType.DataRow, outer.subarray(3, 3 + inner.length));
    expect(msg).toEqual({ type: 'DataRow', fields: [ascii('ab'), ascii('c')] });
  });

  it('encodeDataRow writes the same bytes as encodeBackend', () => {
    const fields = [ascii('x'), null, new Uint8Array(0), range(300)];
    const w = new Writer();
    encodeDataRow(w, fields);
    expect(toHex(w.take())).toBe(toHex(encode({ type: 'DataRow', fields })));
  });
});

// ---------------------------------------------------------------------------------------------------
// Arbitraries

/** Strings a cstring can carry: any Unicode (no lone surrogates, which UTF-8 cannot carry) but NUL. */
const cstr = (maxLength = 12): fc.Arbitrary<string> =>
  fc.string({ unit: 'binary', maxLength }).filter((s) => !s.includes('\0'));
const nonEmptyCstr = cstr().filter((s) => s !== '');
const i16 = fc.integer({ min: -0x8000, max: 0x7fff });
const i32 = fc.integer({ min: -0x8000_0000, max: 0x7fff_ffff });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const blob = (maxLength = 24): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength });
const format01 = fc.constantFrom<0 | 1>(0, 1);

const KNOWN_CODES = 'SVCMDHPpqWstcdnFLR';
const noticeFields: fc.Arbitrary<NoticeFields> = fc.record(
  {
    severity: cstr(),
    severityNonLocalized: cstr(),
    code: cstr(5),
    message: cstr(),
    detail: cstr(),
    hint: cstr(),
    position: cstr(),
    internalPosition: cstr(),
    internalQuery: cstr(),
    where: cstr(),
    schema: cstr(),
    table: cstr(),
    column: cstr(),
    dataType: cstr(),
    constraint: cstr(),
    file: cstr(),
    line: cstr(),
    routine: cstr(),
    unknown: fc.dictionary(
      fc
        .integer({ min: 1, max: 0xff })
        .map((c) => String.fromCharCode(c))
        .filter((c) => !KNOWN_CODES.includes(c)),
      cstr(),
      { minKeys: 1, maxKeys: 3 },
    ),
  },
  { requiredKeys: [] },
);

const rowField = fc.record({
  name: cstr(),
  tableOid: u32,
  columnAttr: i16,
  typeOid: u32,
  typeSize: i16,
  typeModifier: i32,
  format: i16,
});

const arbitraries: { [T in BackendMessageType]: fc.Arbitrary<Extract<BackendMessage, { type: T }>> } = {
  AuthenticationOk: fc.constant({ type: 'AuthenticationOk' }),
  AuthenticationKerberosV5: fc.constant({ type: 'AuthenticationKerberosV5' }),
  AuthenticationCleartextPassword: fc.constant({ type: 'AuthenticationCleartextPassword' }),
  AuthenticationMD5Password: fc
    .uint8Array({ minLength: 4, maxLength: 4 })
    .map((salt) => ({ type: 'AuthenticationMD5Password', salt })),
  AuthenticationGSS: fc.constant({ type: 'AuthenticationGSS' }),
  AuthenticationGSSContinue: blob().map((data) => ({ type: 'AuthenticationGSSContinue', data })),
  AuthenticationSSPI: fc.constant({ type: 'AuthenticationSSPI' }),
  AuthenticationSASL: fc
    .array(nonEmptyCstr, { maxLength: 4 })
    .map((mechanisms) => ({ type: 'AuthenticationSASL', mechanisms })),
  AuthenticationSASLContinue: blob().map((data) => ({ type: 'AuthenticationSASLContinue', data })),
  AuthenticationSASLFinal: blob().map((data) => ({ type: 'AuthenticationSASLFinal', data })),
  BackendKeyData: fc
    .tuple(i32, fc.uint8Array({ minLength: 4, maxLength: 256 }))
    .map(([processId, secretKey]) => ({ type: 'BackendKeyData', processId, secretKey })),
  BindComplete: fc.constant({ type: 'BindComplete' }),
  CloseComplete: fc.constant({ type: 'CloseComplete' }),
  CommandComplete: cstr().map((tag) => ({ type: 'CommandComplete', tag })),
  CopyData: blob(64).map((data) => ({ type: 'CopyData', data })),
  CopyDone: fc.constant({ type: 'CopyDone' }),
  CopyInResponse: fc
    .tuple(format01, fc.array(i16, { maxLength: 6 }))
    .map(([format, columnFormats]) => ({ type: 'CopyInResponse', format, columnFormats })),
  CopyOutResponse: fc
    .tuple(format01, fc.array(i16, { maxLength: 6 }))
    .map(([format, columnFormats]) => ({ type: 'CopyOutResponse', format, columnFormats })),
  CopyBothResponse: fc
    .tuple(format01, fc.array(i16, { maxLength: 6 }))
    .map(([format, columnFormats]) => ({ type: 'CopyBothResponse', format, columnFormats })),
  DataRow: fc
    .array(fc.option(blob(), { nil: null }), { maxLength: 8 })
    .map((fields) => ({ type: 'DataRow', fields })),
  EmptyQueryResponse: fc.constant({ type: 'EmptyQueryResponse' }),
  ErrorResponse: noticeFields.map((fields) => ({ type: 'ErrorResponse', fields })),
  NoticeResponse: noticeFields.map((fields) => ({ type: 'NoticeResponse', fields })),
  FunctionCallResponse: fc
    .option(blob(), { nil: null })
    .map((result) => ({ type: 'FunctionCallResponse', result })),
  NegotiateProtocolVersion: fc
    .tuple(u32, fc.array(cstr(), { maxLength: 4 }))
    .map(([version, unrecognizedOptions]) => ({
      type: 'NegotiateProtocolVersion',
      version,
      unrecognizedOptions,
    })),
  NoData: fc.constant({ type: 'NoData' }),
  NotificationResponse: fc
    .tuple(i32, cstr(), cstr())
    .map(([processId, channel, payload]) => ({ type: 'NotificationResponse', processId, channel, payload })),
  ParameterDescription: fc
    .array(u32, { maxLength: 8 })
    .map((typeOids) => ({ type: 'ParameterDescription', typeOids })),
  ParameterStatus: fc
    .tuple(cstr(), cstr())
    .map(([name, value]) => ({ type: 'ParameterStatus', name, value })),
  ParseComplete: fc.constant({ type: 'ParseComplete' }),
  PortalSuspended: fc.constant({ type: 'PortalSuspended' }),
  ReadyForQuery: fc
    .constantFrom<'I' | 'T' | 'E'>('I', 'T', 'E')
    .map((status) => ({ type: 'ReadyForQuery', status })),
  RowDescription: fc.array(rowField, { maxLength: 4 }).map((fields) => ({ type: 'RowDescription', fields })),
};

const anyMessage: fc.Arbitrary<BackendMessage> = fc.oneof(
  ...Object.values(arbitraries as Record<string, fc.Arbitrary<BackendMessage>>),
);

describe('backend codec: round trip', () => {
  for (const type of ALL_TYPES) {
    it(`encode → frame → decode is the identity for ${type}`, () => {
      fc.assert(
        fc.property(arbitraries[type] as fc.Arbitrary<BackendMessage>, (msg) => {
          expect(decodeAll(encode(msg))).toEqual([msg]);
        }),
        fcParams(100),
      );
    });
  }

  it('round-trips a stream of mixed messages split into arbitrary chunks', () => {
    fc.assert(
      fc.property(
        fc.array(anyMessage, { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 40 }),
        (msgs, step) => {
          const stream = encode(...msgs);
          const f = new Framer();
          const got: BackendMessage[] = [];
          for (let i = 0; i < stream.length; i += step) {
            f.push(stream.subarray(i, i + step));
            let m: Frame | null;
            // Copy views before the next push invalidates them, as a consumer must.
            // biome-ignore lint/suspicious/noAssignInExpressions: idiomatic drain loop
            while ((m = f.next()) !== null) got.push(structuredClone(decodeBackend(m)));
          }
          expect(got).toEqual(msgs);
        },
      ),
      fcParams(100),
    );
  });
});

// ---------------------------------------------------------------------------------------------------
// Negative cases

describe('backend codec: malformed input', () => {
  for (const [label, msg, spec] of golden) {
    const full = wire(spec);
    const type = full[0]!;
    const body = full.subarray(5);
    const open = OPEN_ENDED.has(msg.type);

    if (body.length > 0 && !open) {
      it(`rejects every truncation of ${label}`, () => {
        for (let n = 0; n < body.length; n++) {
          // Errors name the wire message: every authentication request is an 'R' "Authentication".
          const name = msg.type.startsWith('Authentication') ? 'Authentication' : msg.type;
          expectProtocolError(
            () => decodeBody(type, body.subarray(0, n)),
            new RegExp(`invalid ${name} message`),
          );
        }
      });
    }
    if (!open) {
      it(`rejects trailing bytes after ${label}`, () => {
        const longer = new Uint8Array(body.length + 1);
        longer.set(body);
        expectProtocolError(() => decodeBody(type, longer), /unexpected trailing byte/);
      });
    }
  }

  it('rejects truncations of the fixed part of open-ended messages', () => {
    // Auth code cut short, for the data-carrying authentication requests.
    for (const n of [0, 1, 2, 3]) {
      expectProtocolError(
        () => decodeBody(BackendType.Authentication, [0, 0, 0, 8].slice(0, n)),
        /truncated/,
      );
      expectProtocolError(() => decodeBody(BackendType.BackendKeyData, [0, 0, 4, 0xd2].slice(0, n)));
    }
  });

  it('rejects BackendKeyData keys shorter than 4 or longer than 256 bytes', () => {
    const key = (n: number) => [0, 0, 4, 0xd2, ...range(n)];
    expectProtocolError(() => decodeBody(BackendType.BackendKeyData, key(3)), /cancel key length 3/);
    expectProtocolError(() => decodeBody(BackendType.BackendKeyData, key(0)), /cancel key length 0/);
    expectProtocolError(() => decodeBody(BackendType.BackendKeyData, key(257)), /cancel key length 257/);
    expect(decodeBody(BackendType.BackendKeyData, key(256))).toMatchObject({ type: 'BackendKeyData' });
    expect(decodeBody(BackendType.BackendKeyData, key(4))).toMatchObject({ type: 'BackendKeyData' });
  });

  it('rejects unknown message types', () => {
    for (const t of [0x00, 0x78, 0x51, 0x70, 0xff]) {
      expectProtocolError(() => decodeBody(t, []), /unknown backend message type/);
    }
    expectProtocolError(() => decodeBody(0x78, []), /"x"/);
    expectProtocolError(() => decodeBody(0x00, []), /0x00/);
  });

  it('rejects unknown authentication request codes', () => {
    for (const code of [1, 4, 6, 13, 255, -1]) {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setInt32(0, code);
      expectProtocolError(
        () => decodeBody(BackendType.Authentication, b),
        new RegExp(`unknown authentication request code ${code}`),
      );
    }
  });

  it('rejects negative counts', () => {
    expectProtocolError(() => decodeBody(BackendType.DataRow, [0xff, 0xff]), /negative field count -1/);
    expectProtocolError(() => decodeBody(BackendType.RowDescription, [0x80, 0x00]), /negative field count/);
    expectProtocolError(
      () => decodeBody(BackendType.CopyInResponse, [0, 0xff, 0xfe]),
      /negative column count/,
    );
    expectProtocolError(
      () => decodeBody(BackendType.NegotiateProtocolVersion, [0, 3, 0, 0, 0xff, 0xff, 0xff, 0xff]),
      /negative option count/,
    );
  });

  it('fails fast on counts the body cannot hold, before allocating for them', () => {
    // 32767 DataRow fields need at least 131068 bytes; the body has 10.
    expectProtocolError(
      () => decodeBody(BackendType.DataRow, [0x7f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]),
      /32767 fields cannot fit/,
    );
    expectProtocolError(() => decodeBody(BackendType.RowDescription, [0x03, 0xe8, 0, 0]), /cannot fit/);
    expectProtocolError(() => decodeBody(BackendType.CopyOutResponse, [0, 0x7f, 0xff, 0, 0]), /cannot fit/);
    expectProtocolError(
      () => decodeBody(BackendType.ParameterDescription, [0xff, 0xff, 0, 0, 0, 0]),
      /cannot fit/,
    );
    expectProtocolError(
      () => decodeBody(BackendType.NegotiateProtocolVersion, [0, 3, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0x61, 0]),
      /cannot fit/,
    );
  });

  it('reads the ParameterDescription count unsigned (a statement may have up to 65535 parameters)', () => {
    const n = 0xffff;
    const body = new Uint8Array(2 + 4 * n);
    body[0] = 0xff;
    body[1] = 0xff;
    const msg = decodeBody(BackendType.ParameterDescription, body);
    expect(msg.type === 'ParameterDescription' && msg.typeOids.length).toBe(n);
    const again = encode(msg);
    expect(again.length).toBe(5 + body.length);
    expect(toHex(again.subarray(5, 7))).toBe('ff ff');
  });

  it('rejects invalid values', () => {
    expectProtocolError(
      () => decodeBody(BackendType.ReadyForQuery, [0x58]),
      /invalid transaction status "X"/,
    );
    expectProtocolError(() => decodeBody(BackendType.ReadyForQuery, [0]), /invalid transaction status 0x00/);
    expectProtocolError(
      () => decodeBody(BackendType.DataRow, [0, 1, 0xff, 0xff, 0xff, 0xfe]),
      /invalid field length -2/,
    );
    expectProtocolError(
      () => decodeBody(BackendType.DataRow, [0, 1, 0x80, 0, 0, 0]),
      /invalid field length -2147483648/,
    );
    expectProtocolError(
      () => decodeBody(BackendType.DataRow, [0, 1, 0x7f, 0xff, 0xff, 0xff]),
      /DataRow message: truncated/,
    );
    expectProtocolError(
      () => decodeBody(BackendType.FunctionCallResponse, [0xff, 0xff, 0xff, 0xfe]),
      /invalid result length -2/,
    );
    expectProtocolError(
      () => decodeBody(BackendType.CopyBothResponse, [2, 0, 0]),
      /invalid overall format 2/,
    );
    expectProtocolError(
      () => decodeBody(BackendType.CommandComplete, ascii('SELECT')),
      /unterminated string/,
    );
    // SASL mechanism list without its closing empty string.
    expectProtocolError(
      () => decodeBody(BackendType.Authentication, [0, 0, 0, 10, 0x41, 0]),
      /Authentication message: unterminated string/,
    );
  });

  it('accepts repeated notice field codes, keeping the last value', () => {
    const msg = decodeBody(BackendType.NoticeResponse, wire("4d 'a' 00 4d 'b' 00 00"));
    expect(msg).toEqual({ type: 'NoticeResponse', fields: { message: 'b' } });
  });

  it('only ever yields a message or a ProtocolError for random bodies of every type byte', () => {
    const typeBytes = [...Object.values(BackendType), 0x00, 0x78];
    fc.assert(
      fc.property(
        fc.constantFrom(...typeBytes),
        // Half the time, lead with a plausible auth code or count so deeper paths get exercised.
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc
            .tuple(fc.integer({ min: -1, max: 13 }), fc.uint8Array({ maxLength: 60 }))
            .map(([lead, rest]) => Uint8Array.of(0, 0, 0, lead & 0xff, ...rest)),
          fc
            .tuple(fc.integer({ min: 0, max: 4 }), fc.uint8Array({ maxLength: 60 }))
            .map(([lead, rest]) => Uint8Array.of(0, lead, ...rest)),
        ),
        (type, body) => {
          try {
            const msg = decodeBackend({ type, body });
            expect(typeof msg.type).toBe('string');
          } catch (e) {
            expect(e).toBeInstanceOf(ProtocolError);
          }
        },
      ),
      fcParams(2000),
    );
  });
});

describe('backend codec: encoder refusals', () => {
  const refused: Array<[string, BackendMessage, RegExp]> = [
    [
      'an MD5 salt that is not 4 bytes',
      { type: 'AuthenticationMD5Password', salt: bytes(1, 2, 3) },
      /salt is 3 bytes/,
    ],
    [
      'a 3-byte cancel key',
      { type: 'BackendKeyData', processId: 1, secretKey: bytes(1, 2, 3) },
      /cancel key length 3/,
    ],
    ['a 257-byte cancel key', { type: 'BackendKeyData', processId: 1, secretKey: range(257) }, /257/],
    [
      'an invalid ReadyForQuery status',
      { type: 'ReadyForQuery', status: 'X' as 'I' },
      /invalid transaction status/,
    ],
    [
      'an empty SASL mechanism name',
      { type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256', ''] },
      /empty mechanism/,
    ],
    [
      'a multi-character unknown notice code',
      { type: 'NoticeResponse', fields: { unknown: { XY: 'z' } } },
      /invalid field code "XY"/,
    ],
    [
      'a known code among the unknown notice codes',
      { type: 'ErrorResponse', fields: { unknown: { M: 'dup' } } },
      /invalid field code "M"/,
    ],
    [
      'an overall copy format other than 0 or 1',
      { type: 'CopyInResponse', format: 2 as 0, columnFormats: [] },
      /invalid overall format 2/,
    ],
    [
      'more DataRow fields than an Int16 counts',
      { type: 'DataRow', fields: new Array<null>(0x8000).fill(null) },
      /exceed the Int16 count/,
    ],
  ];
  for (const [label, msg, pattern] of refused) {
    it(`refuses ${label} without leaving a message open`, () => {
      const w = new Writer();
      expectProtocolError(() => encodeBackend(w, msg), pattern);
      // The writer is still usable: the refusal happened before `begin()`.
      encodeBackend(w, { type: 'NoData' });
      expect(toHex(w.take())).toBe('6e 00 00 00 04');
    });
  }

  it('refuses a NUL inside a string', () => {
    expectProtocolError(() => encode({ type: 'CommandComplete', tag: 'a\0b' }), /NUL/);
  });
});
