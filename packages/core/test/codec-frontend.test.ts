import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrontendType } from '../src/codec/constants.ts';
import { type Frame, Framer } from '../src/codec/framer.ts';
import {
  decodeFrontend,
  encodeBind,
  encodeClose,
  encodeCopyData,
  encodeDescribe,
  encodeExecute,
  encodeFrontend,
  encodeFunctionCall,
  encodeParse,
  encodeQuery,
  encodeSASLInitialResponse,
  encodeSync,
  type FrontendDecodeContext,
  type FrontendMessage,
  type PasswordMessageKind,
} from '../src/codec/frontend.ts';
import { Writer } from '../src/codec/writer.ts';
import { ProtocolError } from '../src/errors.ts';
import { fcParams } from './fc.ts';

const hex = (b: Uint8Array): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');
const unhex = (s: string): Uint8Array =>
  Uint8Array.from(s.replace(/[\s|]+/g, '').match(/../g) ?? [], (h) => Number.parseInt(h, 16));
const norm = (s: string): string => hex(unhex(s));

function encoded(fn: (w: Writer) => void): Uint8Array {
  const w = new Writer(8);
  fn(w);
  return w.take();
}

/** The context a server would be in when it receives this message. */
function contextFor(m: FrontendMessage): FrontendDecodeContext {
  const kinds: Partial<Record<FrontendMessage['type'], PasswordMessageKind>> = {
    PasswordMessage: 'password',
    SASLInitialResponse: 'sasl-initial',
    SASLResponse: 'sasl',
    GSSResponse: 'gss',
  };
  const k = kinds[m.type];
  return k ? { passwordMessage: k } : {};
}

function frames(bytes: Uint8Array): Frame[] {
  const f = new Framer();
  f.push(bytes);
  const out: Frame[] = [];
  for (let m = f.next(); m !== null; m = f.next()) out.push(m);
  expect(f.buffered).toBe(0);
  return out;
}

function expectProtocolError(fn: () => unknown, message?: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(ProtocolError);
  if (message) expect((thrown as Error).message).toMatch(message);
}

const P: Array<[FrontendMessage, string]> = [
  [{ type: 'PasswordMessage', password: 'pw' }, '70 00 00 00 07 | 70 77 00'],
  [
    { type: 'SASLInitialResponse', mechanism: 'M', data: Uint8Array.of(1, 2) },
    '70 00 00 00 0C | 4D 00 | 00 00 00 02 | 01 02',
  ],
  [{ type: 'SASLInitialResponse', mechanism: 'M', data: null }, '70 00 00 00 0A | 4D 00 | FF FF FF FF'],
  [
    { type: 'SASLInitialResponse', mechanism: 'M', data: new Uint8Array(0) },
    '70 00 00 00 0A | 4D 00 | 00 00 00 00',
  ],
  [{ type: 'SASLResponse', data: Uint8Array.of(0xaa, 0xbb) }, '70 00 00 00 06 | AA BB'],
  [{ type: 'GSSResponse', data: Uint8Array.of(0xaa, 0xbb) }, '70 00 00 00 06 | AA BB'],
];

/** Golden encodings of every message type (hand-assembled from the protocol docs). */
const GOLDEN: Array<[FrontendMessage, string]> = [
  ...P,
  [{ type: 'Query', sql: 'SELECT 1' }, '51 00 00 00 0D | 53 45 4C 45 43 54 20 31 00'],
  [{ type: 'Query', sql: 'é' }, '51 00 00 00 07 | C3 A9 00'],
  [
    { type: 'Parse', name: 's1', query: 'q', paramTypes: [23, 0xffff_ffff] },
    '50 00 00 00 13 | 73 31 00 | 71 00 | 00 02 | 00 00 00 17 | FF FF FF FF',
  ],
  [{ type: 'Parse', name: '', query: '', paramTypes: [] }, '50 00 00 00 08 | 00 | 00 | 00 00'],
  [
    {
      type: 'Bind',
      portal: 'p',
      statement: 's',
      paramFormats: [1],
      params: [Uint8Array.of(0x2a), null],
      resultFormats: [0, 1],
    },
    '42 00 00 00 1D | 70 00 | 73 00 | 00 01 00 01 | 00 02 | 00 00 00 01 2A | FF FF FF FF | 00 02 00 00 00 01',
  ],
  [
    { type: 'Bind', portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] },
    '42 00 00 00 0C | 00 | 00 | 00 00 | 00 00 | 00 00',
  ],
  [{ type: 'Describe', target: 'S', name: 'stmt' }, '44 00 00 00 0A | 53 | 73 74 6D 74 00'],
  [{ type: 'Describe', target: 'P', name: '' }, '44 00 00 00 06 | 50 | 00'],
  [{ type: 'Execute', portal: '', maxRows: 0 }, '45 00 00 00 09 | 00 | 00 00 00 00'],
  [{ type: 'Execute', portal: 'p', maxRows: 100 }, '45 00 00 00 0A | 70 00 | 00 00 00 64'],
  [{ type: 'Sync' }, '53 00 00 00 04'],
  [{ type: 'Flush' }, '48 00 00 00 04'],
  [{ type: 'Close', target: 'S', name: 's' }, '43 00 00 00 07 | 53 | 73 00'],
  [{ type: 'Close', target: 'P', name: '' }, '43 00 00 00 06 | 50 | 00'],
  [{ type: 'CopyData', data: Uint8Array.of(1, 2, 3) }, '64 00 00 00 07 | 01 02 03'],
  [{ type: 'CopyData', data: new Uint8Array(0) }, '64 00 00 00 04'],
  [{ type: 'CopyDone' }, '63 00 00 00 04'],
  [{ type: 'CopyFail', message: 'x' }, '66 00 00 00 06 | 78 00'],
  [
    {
      type: 'FunctionCall',
      oid: 1598,
      argFormats: [1],
      args: [Uint8Array.of(0, 0, 0, 1), null],
      resultFormat: 1,
    },
    '46 00 00 00 1C | 00 00 06 3E | 00 01 00 01 | 00 02 | 00 00 00 04 00 00 00 01 | FF FF FF FF | 00 01',
  ],
  [{ type: 'Terminate' }, '58 00 00 00 04'],
];

describe('golden bytes', () => {
  it.each(GOLDEN.map(([m, h]) => [`${m.type} ${hex(encoded((w) => encodeFrontend(w, m)))}`, m, h] as const))(
    '%s',
    (_, msg, golden) => {
      const bytes = encoded((w) => encodeFrontend(w, msg));
      expect(hex(bytes)).toBe(norm(golden));
      const [frame, ...more] = frames(unhex(golden));
      expect(more).toEqual([]);
      expect(decodeFrontend(frame!, contextFor(msg))).toEqual(msg);
    },
  );

  it('covers every frontend type byte', () => {
    const seen = new Set(GOLDEN.map(([, h]) => unhex(h)[0]));
    for (const t of Object.values(FrontendType)) expect(seen).toContain(t);
  });

  it('per-message encoders write the same bytes as encodeFrontend', () => {
    const b = encoded((w) => {
      encodeQuery(w, 'SELECT 1');
      encodeCopyData(w, Uint8Array.of(1, 2, 3));
      encodeSync(w);
      encodeParse(w, '', '');
      encodeExecute(w, '');
    });
    expect(hex(b)).toBe(
      norm(
        '51 00 00 00 0D 53 45 4C 45 43 54 20 31 00 | 64 00 00 00 07 01 02 03 | 53 00 00 00 04 | 50 00 00 00 08 00 00 00 00 | 45 00 00 00 09 00 00 00 00 00',
      ),
    );
  });
});

/** Code points of well-formed strings without NUL (a cstring cannot carry one), mostly ASCII. */
const codePoint = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 0x7f }), weight: 3 },
  { arbitrary: fc.integer({ min: 0x80, max: 0xd7ff }), weight: 1 },
  { arbitrary: fc.integer({ min: 0xe000, max: 0x10ffff }), weight: 1 },
);
const cstr = fc.array(codePoint, { maxLength: 16 }).map((a) => String.fromCodePoint(...a));
const bytes = fc.uint8Array({ maxLength: 32 });
const nullable = fc.option(bytes, { nil: null, freq: 4 });
const int16 = fc.integer({ min: -0x8000, max: 0x7fff });
const format = fc.oneof(fc.constantFrom(0, 1), int16);
const target = fc.constantFrom<'S' | 'P'>('S', 'P');
const oid = fc.integer({ min: 0, max: 0xffff_ffff });

const message: fc.Arbitrary<FrontendMessage> = fc.oneof(
  cstr.map((password): FrontendMessage => ({ type: 'PasswordMessage', password })),
  fc
    .record({ mechanism: cstr, data: nullable })
    .map((r): FrontendMessage => ({ type: 'SASLInitialResponse', ...r })),
  bytes.map((data): FrontendMessage => ({ type: 'SASLResponse', data })),
  bytes.map((data): FrontendMessage => ({ type: 'GSSResponse', data })),
  cstr.map((sql): FrontendMessage => ({ type: 'Query', sql })),
  fc
    .record({ name: cstr, query: cstr, paramTypes: fc.array(oid, { maxLength: 8 }) })
    .map((r): FrontendMessage => ({ type: 'Parse', ...r })),
  fc
    .record({
      portal: cstr,
      statement: cstr,
      paramFormats: fc.array(format, { maxLength: 6 }),
      params: fc.array(nullable, { maxLength: 6 }),
      resultFormats: fc.array(format, { maxLength: 6 }),
    })
    .map((r): FrontendMessage => ({ type: 'Bind', ...r })),
  fc.record({ target, name: cstr }).map((r): FrontendMessage => ({ type: 'Describe', ...r })),
  fc
    .record({ portal: cstr, maxRows: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) })
    .map((r): FrontendMessage => ({ type: 'Execute', ...r })),
  fc.constant<FrontendMessage>({ type: 'Sync' }),
  fc.constant<FrontendMessage>({ type: 'Flush' }),
  fc.record({ target, name: cstr }).map((r): FrontendMessage => ({ type: 'Close', ...r })),
  bytes.map((data): FrontendMessage => ({ type: 'CopyData', data })),
  fc.constant<FrontendMessage>({ type: 'CopyDone' }),
  cstr.map((message): FrontendMessage => ({ type: 'CopyFail', message })),
  fc
    .record({
      oid,
      argFormats: fc.array(format, { maxLength: 6 }),
      args: fc.array(nullable, { maxLength: 6 }),
      resultFormat: format,
    })
    .map((r): FrontendMessage => ({ type: 'FunctionCall', ...r })),
  fc.constant<FrontendMessage>({ type: 'Terminate' }),
);

/** A comparable rendering: byte views become hex (they are only valid until the next push). */
const show = (m: FrontendMessage): string =>
  JSON.stringify(m, (_, v: unknown) => (v instanceof Uint8Array ? `bytes:${hex(v)}` : v));

describe('round trip', () => {
  it('encode → Framer (arbitrary chunking) → decode gives back every message', () => {
    fc.assert(
      fc.property(
        fc.array(message, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 1, max: 64 }),
        (ms, chunk) => {
          const w = new Writer(16);
          for (const m of ms) encodeFrontend(w, m);
          const all = w.take();
          const f = new Framer();
          const got: string[] = [];
          for (let i = 0; i < all.length; i += chunk) {
            f.push(all.subarray(i, i + chunk));
            for (let fr = f.next(); fr !== null; fr = f.next()) {
              got.push(show(decodeFrontend(fr, contextFor(ms[got.length]!))));
            }
          }
          expect(got).toEqual(ms.map(show));
          expect(f.buffered).toBe(0);
        },
      ),
      fcParams(),
    );
  });

  it('handles the 65535-value count limit (Int16 counts are unsigned on the wire)', () => {
    const params = new Array<null>(0xffff).fill(null);
    const b = encoded((w) =>
      encodeBind(w, { portal: '', statement: '', paramFormats: [], params, resultFormats: [] }),
    );
    const [frame] = frames(b);
    const m = decodeFrontend(frame!);
    expect(m.type === 'Bind' && m.params.length).toBe(0xffff);
  });
});

describe('encoder input checks', () => {
  it('refuse a NUL in any string without leaving the Writer half-written', () => {
    const w = new Writer(8);
    encodeSync(w);
    const refused: FrontendMessage[] = [
      { type: 'Query', sql: 'SELECT\0 1' },
      { type: 'PasswordMessage', password: 'a\0' },
      { type: 'SASLInitialResponse', mechanism: '\0', data: null },
      { type: 'Parse', name: 'a\0b', query: '', paramTypes: [] },
      { type: 'Parse', name: '', query: '\0', paramTypes: [] },
      { type: 'Bind', portal: '\0', statement: '', paramFormats: [], params: [], resultFormats: [] },
      { type: 'Bind', portal: '', statement: '\0', paramFormats: [], params: [], resultFormats: [] },
      { type: 'Describe', target: 'S', name: '\0' },
      { type: 'Execute', portal: '\0', maxRows: 0 },
      { type: 'Close', target: 'P', name: '\0' },
      { type: 'CopyFail', message: 'boom\0' },
    ];
    for (const m of refused) {
      expectProtocolError(() => encodeFrontend(w, m), /NUL/);
      expect(w.length).toBe(5);
    }
    encodeSync(w);
    expect(hex(w.take())).toBe(norm('53 00 00 00 04 53 00 00 00 04'));
  });

  it('refuse values that do not fit their wire fields', () => {
    const w = new Writer(8);
    const bind = { portal: '', statement: '', paramFormats: [], params: [], resultFormats: [] };
    const refused: Array<[() => void, RegExp]> = [
      [() => encodeParse(w, '', '', [-1]), /parameter type OID -1 is out of range/],
      [() => encodeParse(w, '', '', [2 ** 32]), /out of range/],
      [() => encodeParse(w, '', '', new Array<number>(0x10000).fill(0)), /too many parameter types: 65536/],
      [() => encodeBind(w, { ...bind, paramFormats: [0x8000] }), /parameter formats entry 32768/],
      [() => encodeBind(w, { ...bind, resultFormats: [1.5] }), /result formats entry/],
      [() => encodeBind(w, { ...bind, params: new Array<null>(0x10000).fill(null) }), /too many parameters/],
      [() => encodeExecute(w, '', 2 ** 31), /maxRows/],
      [() => encodeDescribe(w, 'X' as 'S', ''), /invalid describe\/close target "X"/],
      [() => encodeClose(w, 's' as 'S', ''), /invalid describe\/close target/],
      [() => encodeFunctionCall(w, { oid: -1, argFormats: [], args: [], resultFormat: 0 }), /function OID/],
      [
        () => encodeFunctionCall(w, { oid: 1, argFormats: [], args: [], resultFormat: 70000 }),
        /result format/,
      ],
    ];
    for (const [fn, msg] of refused) {
      expectProtocolError(fn, msg);
      expect(w.length).toBe(0);
    }
  });

  it('distinguishes a null SASL initial response (-1) from an empty one (0)', () => {
    expect(hex(encoded((w) => encodeSASLInitialResponse(w, 'M', null)))).toBe(
      norm('70 00 00 00 0A 4D 00 FF FF FF FF'),
    );
    expect(hex(encoded((w) => encodeSASLInitialResponse(w, 'M', new Uint8Array(0))))).toBe(
      norm('70 00 00 00 0A 4D 00 00 00 00 00'),
    );
  });
});

describe('decodeFrontend rejects malformed input', () => {
  const frame = (type: number, body: number[] | Uint8Array): Frame => ({
    type,
    body: Uint8Array.from(body),
  });
  const bodyOf = (golden: string): { type: number; body: Uint8Array } => {
    const b = unhex(golden);
    return { type: b[0]!, body: b.subarray(5) };
  };

  it('fails at every truncation of messages with structure', () => {
    const structured = GOLDEN.filter(([m]) =>
      [
        'SASLInitialResponse',
        'PasswordMessage',
        'Query',
        'Parse',
        'Bind',
        'Describe',
        'Execute',
        'Close',
        'CopyFail',
        'FunctionCall',
      ].includes(m.type),
    );
    expect(structured.length).toBeGreaterThan(10);
    for (const [m, golden] of structured) {
      const { type, body } = bodyOf(golden);
      for (let n = 0; n < body.length; n++) {
        expectProtocolError(() => decodeFrontend({ type, body: body.subarray(0, n) }, contextFor(m)));
      }
    }
  });

  it('rejects trailing bytes (SASLResponse, GSSResponse and CopyData take the rest and have none)', () => {
    const open = ['SASLResponse', 'GSSResponse', 'CopyData'];
    for (const [m, golden] of GOLDEN) {
      if (open.includes(m.type)) continue;
      const { type, body } = bodyOf(golden);
      expectProtocolError(
        () => decodeFrontend(frame(type, [...body, 0]), contextFor(m)),
        /unexpected trailing byte/,
      );
    }
  });

  it('checks counts against the bytes present before looping', () => {
    // Bind claiming 65535 parameter formats / parameters in a 20-byte body.
    expectProtocolError(
      () => decodeFrontend(frame(0x42, [0, 0, 0xff, 0xff, ...new Array<number>(16).fill(0)])),
      /invalid Bind message: 65535 parameter formats claimed but only 16 bytes left/,
    );
    expectProtocolError(
      () => decodeFrontend(frame(0x42, [0, 0, 0, 0, 0xff, 0xff, ...new Array<number>(14).fill(0)])),
      /65535 parameters claimed but only 14 bytes left/,
    );
    expectProtocolError(
      () => decodeFrontend(frame(0x42, [0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0])),
      /65535 result formats claimed/,
    );
    expectProtocolError(
      () => decodeFrontend(frame(0x50, [0, 0, 0x03, 0xe8, 0, 0, 0, 0])),
      /invalid Parse message: 1000 parameter types claimed but only 4 bytes left/,
    );
    expectProtocolError(
      () => decodeFrontend(frame(0x46, [0, 0, 0, 1, 0, 0, 0x7f, 0xff, 0, 0])),
      /invalid FunctionCall message: 32767 arguments claimed/,
    );
  });

  it('rejects negative lengths other than -1', () => {
    expectProtocolError(
      () => decodeFrontend(frame(0x42, [0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe, 0, 0])),
      /invalid length -2 of parameters entry 0/,
    );
    expectProtocolError(
      () =>
        decodeFrontend(frame(0x70, [0x4d, 0, 0xff, 0xff, 0xff, 0xfe]), { passwordMessage: 'sasl-initial' }),
      /invalid length -2 of initial response/,
    );
    expectProtocolError(
      () => decodeFrontend(frame(0x70, [0x4d, 0, 0, 0, 0, 100, 1, 2]), { passwordMessage: 'sasl-initial' }),
      /truncated/,
    );
  });

  it('rejects a Describe/Close target other than S or P', () => {
    expectProtocolError(
      () => decodeFrontend(frame(0x44, [0x58, 0])),
      /invalid Describe message: invalid target "X"/,
    );
    expectProtocolError(
      () => decodeFrontend(frame(0x43, [0x73, 0])),
      /invalid Close message: invalid target "s"/,
    );
  });

  it('rejects a password message without an authentication context', () => {
    expectProtocolError(() => decodeFrontend(frame(0x70, [0x70, 0x77, 0])), /unexpected password message/);
    expectProtocolError(() => decodeFrontend(frame(0x70, [])), /unexpected password message/);
  });

  it('reads a "p" body according to the context', () => {
    const f = frame(0x70, [0x4d, 0, 0xff, 0xff, 0xff, 0xff]);
    expect(decodeFrontend(f, { passwordMessage: 'sasl-initial' })).toEqual({
      type: 'SASLInitialResponse',
      mechanism: 'M',
      data: null,
    });
    expect(decodeFrontend(f, { passwordMessage: 'sasl' })).toEqual({ type: 'SASLResponse', data: f.body });
    expect(decodeFrontend(f, { passwordMessage: 'gss' })).toEqual({ type: 'GSSResponse', data: f.body });
    expectProtocolError(() => decodeFrontend(f, { passwordMessage: 'password' }), /trailing/);
  });

  it('rejects every unknown type byte', () => {
    const known = new Set<number>(Object.values(FrontendType));
    for (let t = 0; t < 256; t++) {
      if (known.has(t)) continue;
      expectProtocolError(() => decodeFrontend(frame(t, [])), /invalid frontend message type/);
    }
    expectProtocolError(() => decodeFrontend(frame(0x5a, [0x49])), /invalid frontend message type "Z"/);
    expectProtocolError(() => decodeFrontend(frame(0x00, [])), /invalid frontend message type 0x00/);
  });

  it('only ever returns a message or throws ProtocolError on random bodies', () => {
    const types = fc.oneof(fc.constantFrom(...Object.values(FrontendType)), fc.integer({ min: 0, max: 255 }));
    const ctx = fc.constantFrom<FrontendDecodeContext>(
      {},
      { passwordMessage: 'password' },
      { passwordMessage: 'sasl-initial' },
      { passwordMessage: 'sasl' },
      { passwordMessage: 'gss' },
    );
    // Bodies biased towards small counts, NULs and -1 so the parsers get past their first fields.
    const body = fc.array(
      fc.oneof(fc.constantFrom(0, 0, 1, 0xff, 0x53, 0x50), fc.integer({ min: 0, max: 255 })),
      {
        maxLength: 48,
      },
    );
    fc.assert(
      fc.property(types, body, ctx, (type, b, c) => {
        let m: FrontendMessage;
        try {
          m = decodeFrontend(frame(type, b), c);
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
          return;
        }
        // Whatever decodes encodes back to the same bytes (exactly so for ASCII: invalid UTF-8 in
        // a string decodes to U+FFFD).
        const again = encoded((w) => encodeFrontend(w, m));
        expect(again[0]).toBe(type);
        if (b.every((x) => x < 0x80)) expect(hex(again.subarray(5))).toBe(hex(Uint8Array.from(b)));
      }),
      fcParams(1000),
    );
  });
});
