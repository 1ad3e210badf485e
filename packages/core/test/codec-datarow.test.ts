import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeBackend, encodeDataRow } from '../src/codec/backend.ts';
import { BackendType } from '../src/codec/constants.ts';
import { decodeDataRowText } from '../src/codec/datarow.ts';
import { Framer } from '../src/codec/framer.ts';
import { decodeText } from '../src/codec/reader.ts';
import { Writer } from '../src/codec/writer.ts';
import { ProtocolError } from '../src/errors.ts';
import { FUZZ_TIMEOUT, fcParams, fuzzRuns } from './fc.ts';

// The reference: each field decoded on its own, keeping a leading U+FEFF as a value's own text.
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
const utf8 = new TextEncoder();

/** A DataRow body (no type byte, no length word) holding `fields`. */
function body(fields: readonly (Uint8Array | null)[]): Uint8Array {
  const w = new Writer();
  encodeDataRow(w, fields);
  return w.take().subarray(5);
}

const BOM = Uint8Array.of(0xef, 0xbb, 0xbf);
const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};

/** Bytes that are valid UTF-8 or not, ASCII or not. */
const bytes = fc.oneof(
  // Anything: mostly invalid UTF-8 (lone continuation bytes, truncated sequences, C0/C1/F5–FF...).
  fc.uint8Array({ maxLength: 40 }),
  // Valid UTF-8: 1- to 4-byte characters, surrogate pairs included.
  fc.string({ unit: 'binary', maxLength: 20 }).map((s) => utf8.encode(s)),
  // ASCII only: the row-at-once fast path.
  fc.uint8Array({ maxLength: 30 }).map((b) => b.map((x) => x & 0x7f)),
  // Single invalid bytes in ASCII, which keep the fast path (one byte → one U+FFFD).
  fc
    .array(
      fc.oneof(fc.integer({ min: 0, max: 0x7f }), fc.constantFrom(0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xf0, 0xff)),
      {
        maxLength: 20,
      },
    )
    .map((a) => Uint8Array.from(a)),
  // Truncated sequences and lead bytes at the end, to meet the next length word or field.
  fc.constantFrom(
    Uint8Array.of(0xc3),
    Uint8Array.of(0xe2, 0x82),
    Uint8Array.of(0xf0, 0x9f, 0x98),
    Uint8Array.of(0xed, 0xa0, 0x80),
  ),
);

/** Sometimes with a leading byte-order mark, which must stay in the value. */
const field = fc.option(
  fc.tuple(fc.boolean(), bytes).map(([bom, b]) => (bom ? concat(BOM, b) : b)),
  { nil: null, freq: 5 },
);

describe('decodeDataRowText', () => {
  it('equals a per-field UTF-8 decode (ignoreBOM), whatever the bytes', () => {
    fc.assert(
      fc.property(fc.array(field, { maxLength: 12 }), (fields) => {
        expect(decodeDataRowText(body(fields))).toEqual(
          fields.map((f) => (f === null ? null : decoder.decode(f))),
        );
      }),
      fcParams(1000),
    );
  });

  it(
    'equals a per-field decode when a multi-byte character puts the row off the byte-per-unit path',
    () => {
      // Rows of short fields (length words below 128), each with at least one multi-byte character, so
      // the row is cut from one string at offsets counted from the bytes: valid UTF-8 counted, invalid
      // bytes (overlong forms, surrogates, above U+10FFFF, truncated sequences) left to the decoder.
      const odd = fc.constantFrom(
        Uint8Array.of(0xc0, 0xaf),
        Uint8Array.of(0xe0, 0x80, 0xaf),
        Uint8Array.of(0xed, 0xa0, 0x80),
        Uint8Array.of(0xf4, 0x90, 0x80, 0x80),
        Uint8Array.of(0xf0, 0x8f, 0xbf, 0xbf),
        Uint8Array.of(0xf5),
        Uint8Array.of(0xf5, 0x80, 0x80, 0x80),
        Uint8Array.of(0xf0, 0x9f, 0x98, 0x80),
        Uint8Array.of(0xef, 0xbb, 0xbf),
      );
      const piece = fc.oneof(bytes, odd);
      const shortField = fc.option(
        fc
          .array(piece, { maxLength: 4 })
          .map((parts) => parts.reduce(concat, new Uint8Array(0)).subarray(0, 127)),
        { nil: null, freq: 6 },
      );
      fc.assert(
        fc.property(fc.array(shortField, { maxLength: 10 }), fc.nat(), (fields, at) => {
          const all = [...fields];
          all.splice(at % (all.length + 1), 0, utf8.encode('Zoë'));
          expect(decodeDataRowText(body(all))).toEqual(
            all.map((f) => (f === null ? null : decoder.decode(f))),
          );
        }),
        fcParams(fuzzRuns(1000)),
      );
    },
    FUZZ_TIMEOUT,
  );

  it("equals decodeBackend's DataRow fields decoded with decodeText", () => {
    fc.assert(
      fc.property(fc.array(field, { maxLength: 12 }), (fields) => {
        const b = body(fields);
        const msg = decodeBackend({ type: BackendType.DataRow, body: b });
        if (msg.type !== 'DataRow') throw new Error(`decoded as ${msg.type}`);
        expect(decodeDataRowText(b)).toEqual(
          msg.fields.map((f) => (f === null ? null : decodeText(f, 0, f.length))),
        );
      }),
      fcParams(300),
    );
  });

  it('decodes a body that is a view into a larger buffer (as the Framer hands it over)', () => {
    const w = new Writer();
    encodeDataRow(w, [utf8.encode('abc'), null, utf8.encode('Zoë'), concat(BOM, utf8.encode('x'))]);
    encodeDataRow(w, [utf8.encode('second')]);
    const f = new Framer();
    f.push(w.take());
    const rows: (string | null)[][] = [];
    for (let frame = f.next(); frame !== null; frame = f.next()) rows.push(decodeDataRowText(frame.body));
    expect(rows).toEqual([['abc', null, 'Zoë', '\ufeffx'], ['second']]);
  });

  it('keeps a leading U+FEFF, ASCII rows included', () => {
    expect(decodeDataRowText(body([concat(BOM, utf8.encode('id')), utf8.encode('1')]))).toEqual([
      '\ufeffid',
      '1',
    ]);
    expect(decodeDataRowText(body([BOM]))).toEqual(['\ufeff']);
    expect(decodeDataRowText(body([]))).toEqual([]);
    expect(decodeDataRowText(body([null, new Uint8Array(0)]))).toEqual([null, '']);
  });

  it('does not let an invalid byte at the end of a field swallow the next length word or field', () => {
    // 0xC3 + a length word, 0xE2 0x82 + the next field: per-field decoding gives U+FFFD each time.
    const fields = [
      Uint8Array.of(0x41, 0xc3),
      Uint8Array.of(0xa9),
      Uint8Array.of(0xe2, 0x82),
      Uint8Array.of(0xac),
    ];
    expect(decodeDataRowText(body(fields))).toEqual(['A\ufffd', '\ufffd', '\ufffd', '\ufffd']);
  });

  it('decodes rows with multi-byte text exactly, whichever way they are cut', () => {
    const perField = (fields: readonly (Uint8Array | null)[]) =>
      fields.map((f) => (f === null ? null : decoder.decode(f)));
    const filled = (n: number, first: number, rest: number) => {
      const b = new Uint8Array(n).fill(rest);
      b[0] = first;
      return b;
    };
    const rows: (Uint8Array | null)[][] = [
      // Separated: multi-byte text, no NUL byte.
      [utf8.encode('Zoë'), null, utf8.encode('42'), utf8.encode('Müller, François'), new Uint8Array(0)],
      // A length word of 0x0000C3A9 is "é" in the middle of it, and the field starts with 0xA9.
      [utf8.encode('Zoë'), filled(0xc3a9, 0xa9, 0x78)],
      // 195 bytes: the length word ends in 0xC3, which joins the field's first byte 0xA9 into "é".
      [utf8.encode('Zoë'), filled(0xc3, 0xa9, 0x78), utf8.encode('after')],
      [filled(0xe2, 0x82, 0xac), utf8.encode('x'), utf8.encode('Zoë')],
      // A field holding NUL bytes: field by field.
      [utf8.encode('José'), Uint8Array.of(0x61, 0, 0, 0, 0, 0x62), utf8.encode('x')],
      // Over 64 KiB: field by field.
      [utf8.encode('Zoë'), filled(70_000, 0xc3, 0xa9)],
    ];
    for (const fields of rows) expect(decodeDataRowText(body(fields))).toEqual(perField(fields));
  });

  describe('refuses malformed bodies as decodeBackend does', () => {
    const cases: [string, Uint8Array, RegExp][] = [
      ['empty body', new Uint8Array(0), /truncated/],
      ['one-byte body', Uint8Array.of(0), /truncated/],
      ['negative field count', Uint8Array.of(0xff, 0xff), /negative field count -1/],
      ['more fields than bytes', Uint8Array.of(0, 2, 0, 0, 0, 0), /2 fields cannot fit in 6 bytes/],
      ['truncated length word', Uint8Array.of(0, 2, 0, 0, 0, 1, 0x41, 0, 0, 0), /truncated/],
      ['field longer than the body', Uint8Array.of(0, 1, 0, 0, 0, 5, 0x41), /truncated/],
      ['field length below -1', Uint8Array.of(0, 1, 0xff, 0xff, 0xff, 0xfe), /invalid field length -2/],
      ['trailing bytes', Uint8Array.of(0, 0, 1), /1 unexpected trailing byte/],
      [
        'trailing bytes after a NULL',
        Uint8Array.of(0, 1, 0xff, 0xff, 0xff, 0xff, 0x41, 0x42),
        /2 unexpected trailing byte/,
      ],
    ];
    for (const [name, b, re] of cases) {
      it(name, () => {
        expect(() => decodeDataRowText(b)).toThrow(ProtocolError);
        expect(() => decodeDataRowText(b)).toThrow(/^invalid DataRow message: /);
        expect(() => decodeDataRowText(b)).toThrow(re);
        // Same verdict as the zero-copy decoder.
        expect(() => decodeBackend({ type: BackendType.DataRow, body: b })).toThrow(re);
      });
    }

    it('any strict prefix of a valid body throws a ProtocolError, never a RangeError', () => {
      fc.assert(
        fc.property(fc.array(field, { maxLength: 6 }), fc.nat(), (fields, cut) => {
          const b = body(fields);
          const short = b.subarray(0, cut % b.length);
          expect(() => decodeDataRowText(short)).toThrow(ProtocolError);
        }),
        fcParams(300),
      );
    });
  });
});
