import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pgSaslprep, saslprep } from '../src/auth/saslprep.ts';
import { AuthError } from '../src/errors.ts';
import { fcParams } from './fc.ts';

const enc = new TextEncoder();
// Any code point, lone surrogates included, biased towards ASCII and the BMP (cheaper to set up than
// fast-check's 'binary' unit).
const codePoint = fc
  .oneof(
    fc.integer({ min: 0x20, max: 0x7e }),
    fc.integer({ min: 0, max: 0x33ff }),
    fc.integer({ min: 0, max: 0x10ffff }),
  )
  .map((cp) => String.fromCodePoint(cp));

describe('saslprep (RFC 4013)', () => {
  it('RFC 4013 §3 examples', () => {
    expect(saslprep('I\u00ADX')).toBe('IX'); // soft hyphen mapped to nothing
    expect(saslprep('user')).toBe('user'); // no transformation
    expect(saslprep('USER')).toBe('USER'); // case preserved
    expect(saslprep('\u00AA')).toBe('a'); // NFKC
    expect(saslprep('\u2168')).toBe('IX'); // NFKC
    expect(() => saslprep('\u0007')).toThrow(/prohibited character U\+0007/); // C.2.1
    expect(() => saslprep('\u0627\u0031')).toThrow(/bidi/); // RandALCat must end the string
  });

  it('maps non-ASCII spaces (C.1.2) to U+0020 and removes B.1 characters', () => {
    expect(saslprep('a\u00A0b\u3000c')).toBe('a b c');
    expect(saslprep('a\u200Bb')).toBe('a b'); // U+200B is C.1.2 in RFC 3454 (Unicode 3.2)
    expect(saslprep('\uFEFFa\u200Db\uFE0F\u034F')).toBe('ab');
    expect(saslprep('')).toBe('');
  });

  it('prohibits C.2–C.9 output and unassigned (A.1) code points', () => {
    for (const s of ['\u0080', '\u2028', '\uE000', '\uFDD0', '\uD800', '\uFFFD', '\u2FF0', '\u206A']) {
      expect(() => saslprep(`x${s}`), s).toThrow(AuthError);
    }
    expect(() => saslprep('\u{E0001}')).toThrow(/prohibited/); // C.9 language tag
    expect(() => saslprep('\u0221')).toThrow(/unassigned code point U\+0221/);
    expect(() => saslprep('\u{1F600}')).toThrow(/unassigned/); // assigned only after Unicode 3.2
    expect(saslprep('\u0221', { allowUnassigned: true })).toBe('\u0221');
  });

  it('applies the bidi rule of RFC 3454 §6', () => {
    expect(saslprep('\u0627\u0031\u0628')).toBe('\u0627\u0031\u0628'); // EN inside R/AL is fine
    expect(saslprep('\u05D0\u05D1')).toBe('\u05D0\u05D1');
    expect(() => saslprep('\u0627a\u0628')).toThrow(/bidi violation \(left-to-right U\+0061/);
    expect(() => saslprep('1\u0627')).toThrow(/bidi/);
  });

  it('only ever returns a prepared string or throws AuthError; its output is stable', () => {
    fc.assert(
      fc.property(fc.string({ unit: codePoint, maxLength: 12 }), (s) => {
        let out: string;
        try {
          out = saslprep(s);
        } catch (e) {
          expect(e).toBeInstanceOf(AuthError);
          return;
        }
        expect(saslprep(out)).toBe(out);
        expect(out.normalize('NFKC')).toBe(out);
      }),
      fcParams(),
    );
  });
});

describe('pgSaslprep (PostgreSQL semantics)', () => {
  it('passes pure ASCII through unchecked, even control characters', () => {
    expect(pgSaslprep('\u0007')).toEqual(Uint8Array.of(7));
    expect(pgSaslprep('pencil')).toEqual(enc.encode('pencil'));
  });

  it('uses the SASLprep result when it succeeds', () => {
    expect(pgSaslprep('I\u00ADX')).toEqual(enc.encode('IX'));
    expect(pgSaslprep('\u2168')).toEqual(enc.encode('IX'));
    expect(pgSaslprep(enc.encode('\u00AA'))).toEqual(enc.encode('a'));
  });

  it('falls back to the raw bytes when SASLprep fails or yields nothing', () => {
    expect(pgSaslprep('\u0627\u0031')).toEqual(enc.encode('\u0627\u0031')); // bidi failure
    expect(pgSaslprep('\u00ADx\u0080')).toEqual(enc.encode('\u00ADx\u0080')); // prohibited: unmapped raw
    expect(pgSaslprep('\u00AD')).toEqual(enc.encode('\u00AD')); // maps to the empty string
    expect(pgSaslprep(Uint8Array.of(0xff, 0xfe, 0x41))).toEqual(Uint8Array.of(0xff, 0xfe, 0x41)); // not UTF-8
    expect(pgSaslprep('a\uD800')).toEqual(enc.encode('a\uD800')); // lone surrogate: TextEncoder's U+FFFD
  });

  it('gives the same bytes for a string and its UTF-8 encoding', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 10 }), (s) => {
        expect(pgSaslprep(enc.encode(s))).toEqual(pgSaslprep(s));
      }),
      fcParams(),
    );
  });
});
