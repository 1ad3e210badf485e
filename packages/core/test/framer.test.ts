import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Frame, Framer } from '../src/codec/framer.ts';
import { Writer } from '../src/codec/writer.ts';
import { ProtocolError } from '../src/errors.ts';
import { fcParams } from './fc.ts';

function stream(): { bytes: Uint8Array; expected: Array<[number, number[]]> } {
  const w = new Writer(16);
  const expected: Array<[number, number[]]> = [];
  const add = (type: number, body: number[]) => {
    w.begin(type).bytes(Uint8Array.from(body)).end();
    expected.push([type, body]);
  };
  add(0x52, [0, 0, 0, 0]);
  add(0x53, [...new TextEncoder().encode('client_encoding\0UTF8\0')]);
  add(0x5a, [0x49]);
  add(0x6e, []);
  add(
    0x44,
    Array.from({ length: 300 }, (_, i) => i & 0xff),
  );
  add(0x64, [1, 2, 3]);
  return { bytes: w.take(), expected };
}

function drain(f: Framer): Array<[number, number[]]> {
  const out: Array<[number, number[]]> = [];
  let m: Frame | null;
  // biome-ignore lint/suspicious/noAssignInExpressions: idiomatic drain loop
  while ((m = f.next()) !== null) out.push([m.type, [...m.body]]);
  return out;
}

describe('Framer', () => {
  it('yields the same messages for a stream split at every offset (two chunks)', () => {
    const { bytes, expected } = stream();
    for (let cut = 0; cut <= bytes.length; cut++) {
      const f = new Framer();
      const got: Array<[number, number[]]> = [];
      f.push(bytes.subarray(0, cut));
      got.push(...drain(f));
      f.push(bytes.subarray(cut));
      got.push(...drain(f));
      expect(got, `cut at ${cut}`).toEqual(expected);
      expect(f.buffered).toBe(0);
    }
  });

  it('yields the same messages when fed one byte at a time and in random chunkings', () => {
    const { bytes, expected } = stream();
    const f = new Framer();
    const got: Array<[number, number[]]> = [];
    for (let i = 0; i < bytes.length; i++) {
      f.push(bytes.subarray(i, i + 1));
      got.push(...drain(f));
    }
    expect(got).toEqual(expected);

    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 40 }), (sizes) => {
        const f2 = new Framer();
        const out: Array<[number, number[]]> = [];
        let pos = 0;
        let k = 0;
        while (pos < bytes.length) {
          const n = sizes[k++ % sizes.length]!;
          f2.push(bytes.subarray(pos, pos + n));
          pos += n;
          out.push(...drain(f2));
        }
        expect(out).toEqual(expected);
      }),
      fcParams(),
    );
  });

  it('does not copy a chunk that holds whole messages (zero-copy views)', () => {
    const { bytes } = stream();
    const f = new Framer();
    f.push(bytes);
    const m = f.next()!;
    expect(m.body.buffer).toBe(bytes.buffer);
  });

  it('gathers a very large message in linear time without preallocating the announced length', () => {
    const size = 8 * 1024 * 1024;
    const head = new Uint8Array(5);
    head[0] = 0x64;
    new DataView(head.buffer).setInt32(1, size + 4);
    const f = new Framer();
    f.push(head);
    expect(f.next()).toBeNull();
    const chunk = new Uint8Array(64 * 1024).fill(7);
    for (let sent = 0; sent < size; sent += chunk.length) {
      f.push(chunk);
      if (sent + chunk.length < size) expect(f.next()).toBeNull();
    }
    const m = f.next()!;
    expect(m.type).toBe(0x64);
    expect(m.body.length).toBe(size);
    expect(m.body[size - 1]).toBe(7);
  });

  it('never allocates for an announced length before the bytes arrive', () => {
    const f = new Framer();
    const head = Uint8Array.of(0x64, 0x3f, 0xff, 0xff, 0xff, 1);
    f.push(head);
    expect(f.next()).toBeNull();
    // Internal capacity stays small: reaching in is the only way to see it.
    const cap = (f as unknown as { buf: Uint8Array }).buf.length;
    expect(cap).toBeLessThanOrEqual(64 * 1024);
  });

  it('rejects a length below 4 and above the configured maximum with a ProtocolError', () => {
    const f = new Framer();
    f.push(Uint8Array.of(0x5a, 0, 0, 0, 3));
    expect(() => f.next()).toThrow(ProtocolError);
    expect(() => f.next()).toThrow(/invalid message length 3 for message type "Z"/);

    const g = new Framer({ maxMessageLength: 1000 });
    g.push(Uint8Array.of(0x44, 0, 0, 0x03, 0xe9));
    expect(() => g.next()).toThrow(/exceeds the limit of 1000/);

    const h = new Framer();
    h.push(Uint8Array.of(0x44, 0xff, 0xff, 0xff, 0xff));
    expect(() => h.next()).toThrow(ProtocolError);
  });

  it('serves unframed bytes and untyped packets from the same buffer', () => {
    const f = new Framer();
    // 'S' reply, then a typed message, as a server might (mis)behave: the caller decides.
    f.push(Uint8Array.of(0x53, 0x5a, 0, 0, 0, 5, 0x49));
    expect(f.readByte()).toBe(0x53);
    expect(f.buffered).toBe(6);
    expect(f.next()).toEqual({ type: 0x5a, body: Uint8Array.of(0x49) });

    const g = new Framer();
    g.push(Uint8Array.of(0, 0, 0, 8, 4, 0xd2));
    expect(g.nextUntyped(8, 10004)).toBeNull();
    g.push(Uint8Array.of(0x16, 0x2f));
    expect([...g.nextUntyped(8, 10004)!]).toEqual([4, 0xd2, 0x16, 0x2f]);
    g.push(Uint8Array.of(0, 0, 0, 3));
    expect(() => g.nextUntyped(8, 10004)).toThrow(/invalid length of startup packet: 3/);
  });

  it('only ever yields frames or ProtocolErrors for arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), fc.integer({ min: 1, max: 64 }), (bytes, step) => {
        const f = new Framer({ maxMessageLength: 1 << 16 });
        try {
          for (let i = 0; i < bytes.length; i += step) {
            f.push(bytes.subarray(i, i + step));
            while (f.next() !== null) {}
          }
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
        }
      }),
      fcParams(),
    );
  });
});

describe('Framer: memory bounded by the bytes received, never by an announced length', () => {
  /** What the framer holds on to: its buffer (a caller's chunk while parsing in place) and its spare. */
  const held = (f: Framer): number => {
    const inner = f as unknown as { buf: Uint8Array; spare: Uint8Array | null };
    return inner.buf.byteLength + (inner.spare?.byteLength ?? 0);
  };

  it('random headers (lengths up to 2^31-1, within the limit or not) under random chunking', () => {
    const header = fc
      .tuple(
        fc.integer({ min: 0, max: 255 }),
        fc.oneof(fc.integer({ min: 0, max: 0x7fff_ffff }), fc.nat(70_000)),
      )
      .map(([type, len]) =>
        Uint8Array.of(type, len >>> 24, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff),
      );
    const piece = fc.oneof(header, fc.uint8Array({ maxLength: 40_000 }));
    fc.assert(
      fc.property(
        fc.array(piece, { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 20_000 }),
        fc.constantFrom(1 << 16, 0x3fff_ffff),
        (pieces, step, maxMessageLength) => {
          const f = new Framer({ maxMessageLength });
          let received = 0;
          let largestChunk = 0;
          const all = Uint8Array.from(pieces.flatMap((p) => [...p]));
          try {
            for (let i = 0; i < all.length; i += step) {
              const chunk = all.slice(i, i + step);
              received += chunk.length;
              largestChunk = Math.max(largestChunk, chunk.length);
              f.push(chunk);
              while (f.next() !== null) {}
              // Own buffers grow by doubling from 16 KiB, up to what has arrived; in place, the
              // framer holds the caller's chunk. Never the length a header announced.
              expect(held(f)).toBeLessThanOrEqual(2 * Math.max(16 * 1024, 2 * received) + largestChunk);
            }
          } catch (e) {
            expect(e).toBeInstanceOf(ProtocolError);
          }
        },
      ),
      fcParams(300),
    );
  });

  it('a 1 GiB announced message allocates only as its bytes arrive', () => {
    const f = new Framer();
    f.push(Uint8Array.of(0x64, 0x3f, 0xff, 0xff, 0xff)); // CopyData of length 2^30 - 1
    for (let i = 0; i < 8; i++) f.push(new Uint8Array(64 * 1024));
    expect(f.next()).toBeNull();
    expect(held(f)).toBeLessThanOrEqual(2 * (8 * 64 * 1024 + 5));
  });
});

describe('Writer', () => {
  it('back-patches lengths and coalesces several messages into one buffer', () => {
    const w = new Writer(4);
    w.begin(0x51).cstring('select 1').end();
    w.beginUntyped().i32(80877103).end();
    expect([...w.take()]).toEqual([
      0x51,
      0,
      0,
      0,
      13,
      ...new TextEncoder().encode('select 1'),
      0,
      0,
      0,
      0,
      8,
      0x04,
      0xd2,
      0x16,
      0x2f,
    ]);
    expect(w.length).toBe(0);
  });

  it('encodes non-ASCII text as UTF-8', () => {
    const w = new Writer(2);
    w.text('é€😀');
    expect([...w.take()]).toEqual([...new TextEncoder().encode('é€😀')]);
  });

  it('refuses a NUL inside a C string and stays usable', () => {
    const w = new Writer();
    w.begin(0x51).cstring('ok').end();
    w.begin(0x51);
    expect(() => w.cstring('a\0b')).toThrow(ProtocolError);
    w.begin(0x58).end();
    expect([...w.take()]).toEqual([0x51, 0, 0, 0, 7, 0x6f, 0x6b, 0, 0x58, 0, 0, 0, 4]);
  });
});
