import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  MAX_STARTUP_PACKET_LENGTH,
  PROTOCOL_3_0,
  PROTOCOL_3_1,
  PROTOCOL_3_2,
  PROTOCOL_GREASE,
  protocolVersion,
  SSL_REQUEST_CODE,
} from '../src/codec/constants.ts';
import { Framer } from '../src/codec/framer.ts';
import {
  decodeNegotiationReply,
  decodeStartupPacket,
  encodeCancelRequest,
  encodeGSSENCRequest,
  encodeNegotiationReply,
  encodeSSLRequest,
  encodeStartupMessage,
  encodeStartupPacket,
  STARTUP_MAX_LENGTH,
  STARTUP_MIN_LENGTH,
  type StartupPacket,
} from '../src/codec/startup.ts';
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

/** Frames a whole packet the way a server reads it, then decodes the body. */
function readBack(bytes: Uint8Array): StartupPacket {
  const f = new Framer();
  f.push(bytes);
  const body = f.nextUntyped(STARTUP_MIN_LENGTH, STARTUP_MAX_LENGTH);
  expect(body).not.toBeNull();
  expect(f.buffered).toBe(0);
  return decodeStartupPacket(body!);
}

/** The body (after the length word) of a packet built from a code/version and raw bytes. */
const bodyOf = (code: number, rest: number[] | Uint8Array = []): Uint8Array => {
  const b = new Uint8Array(4 + rest.length);
  new DataView(b.buffer).setUint32(0, code);
  b.set(rest, 4);
  return b;
};

/** A comparable rendering (deep equality on Maps and byte arrays is slow in property loops). */
const show = (p: StartupPacket): string =>
  p.type === 'CancelRequest'
    ? `Cancel ${p.processId} ${hex(p.secretKey)}`
    : p.type === 'StartupMessage'
      ? `Startup ${p.version} ${JSON.stringify([...p.parameters])}`
      : p.type;

const utf8 = (s: string): number[] => [...new TextEncoder().encode(s)];

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

/** Code points of well-formed strings without NUL (a cstring cannot carry one), mostly ASCII. */
const codePoint = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 0x7f }), weight: 3 },
  { arbitrary: fc.integer({ min: 0x80, max: 0xd7ff }), weight: 1 },
  { arbitrary: fc.integer({ min: 0xe000, max: 0x10ffff }), weight: 1 },
);
const cstr = (minLength: number, maxLength: number) =>
  fc.array(codePoint, { minLength, maxLength }).map((a) => String.fromCodePoint(...a));

describe('constants', () => {
  it('bound the length word like the server (4 <= len-4 <= 10000)', () => {
    expect(STARTUP_MIN_LENGTH).toBe(8);
    expect(STARTUP_MAX_LENGTH).toBe(MAX_STARTUP_PACKET_LENGTH + 4);
    const frame = (len: number) => {
      const f = new Framer();
      const b = new Uint8Array(4);
      new DataView(b.buffer).setInt32(0, len);
      f.push(b);
      return () => f.nextUntyped(STARTUP_MIN_LENGTH, STARTUP_MAX_LENGTH);
    };
    expectProtocolError(frame(7), /invalid length of startup packet: 7/);
    expectProtocolError(frame(10005), /invalid length of startup packet: 10005/);
    expect(frame(8)()).toBeNull(); // valid length, body not yet arrived
    expect(frame(10004)()).toBeNull();
  });
});

describe('golden bytes', () => {
  it('SSLRequest', () => {
    const b = encoded(encodeSSLRequest);
    expect(hex(b)).toBe(norm('00 00 00 08 04 D2 16 2F'));
    expect(readBack(b)).toEqual({ type: 'SSLRequest' });
  });

  it('GSSENCRequest', () => {
    const b = encoded(encodeGSSENCRequest);
    expect(hex(b)).toBe(norm('00 00 00 08 04 D2 16 30'));
    expect(readBack(b)).toEqual({ type: 'GSSENCRequest' });
  });

  it('CancelRequest, protocol 3.0 (4-byte key, length 16)', () => {
    const key = unhex('DE AD BE EF');
    const b = encoded((w) => encodeCancelRequest(w, 0x1234, key));
    expect(hex(b)).toBe(norm('00 00 00 10 | 04 D2 16 2E | 00 00 12 34 | DE AD BE EF'));
    expect(readBack(b)).toEqual({ type: 'CancelRequest', processId: 0x1234, secretKey: key });
  });

  it('CancelRequest, protocol 3.2 (32-byte key, length 44)', () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
    const b = encoded((w) => encodeCancelRequest(w, 4242, key));
    expect(b.length).toBe(44);
    expect(hex(b)).toBe(norm(`00 00 00 2C | 04 D2 16 2E | 00 00 10 92 | ${hex(key)}`));
    expect(readBack(b)).toEqual({ type: 'CancelRequest', processId: 4242, secretKey: key });
  });

  it('StartupMessage 3.0 user=alice database=db is the 32 bytes of the reference', () => {
    const expected =
      '00 00 00 20 | 00 03 00 00 | 75 73 65 72 00 61 6c 69 63 65 00 64 61 74 61 62 61 73 65 00 64 62 00 | 00';
    const b = encoded((w) =>
      encodeStartupMessage(w, {
        parameters: [
          ['user', 'alice'],
          ['database', 'db'],
        ],
      }),
    );
    expect(b.length).toBe(32);
    expect(hex(b)).toBe(norm(expected));
    const explicit = encoded((w) =>
      encodeStartupMessage(w, {
        version: PROTOCOL_3_0,
        parameters: new Map([
          ['user', 'alice'],
          ['database', 'db'],
        ]),
      }),
    );
    expect(hex(explicit)).toBe(norm(expected));
    expect(readBack(b)).toEqual({
      type: 'StartupMessage',
      version: PROTOCOL_3_0,
      parameters: new Map([
        ['user', 'alice'],
        ['database', 'db'],
      ]),
    });
  });

  it('StartupMessage 3.2 with a _pq_ option (empty value)', () => {
    const b = encoded((w) =>
      encodeStartupMessage(w, {
        version: PROTOCOL_3_2,
        parameters: [
          ['user', 'u'],
          ['_pq_.test_protocol_negotiation', ''],
        ],
      }),
    );
    const pairs = [...utf8('user\0u\0'), ...utf8('_pq_.test_protocol_negotiation\0\0')];
    const len = 4 + 4 + pairs.length + 1;
    expect(len).toBe(48);
    expect(hex(b)).toBe(norm(`00 00 00 30 | 00 03 00 02 | ${hex(Uint8Array.from(pairs))} | 00`));
    const p = readBack(b);
    expect(p).toEqual({
      type: 'StartupMessage',
      version: PROTOCOL_3_2,
      parameters: new Map([
        ['user', 'u'],
        ['_pq_.test_protocol_negotiation', ''],
      ]),
    });
  });

  it('StartupMessage with no parameters and non-ASCII values', () => {
    expect(hex(encoded((w) => encodeStartupMessage(w, { parameters: [] })))).toBe(
      norm('00 00 00 09 00 03 00 00 00'),
    );
    const b = encoded((w) => encodeStartupMessage(w, { parameters: [['application_name', 'café ☕']] }));
    const p = readBack(b);
    expect(p.type === 'StartupMessage' && p.parameters.get('application_name')).toBe('café ☕');
  });

  it('preserves parameter order, including _pq_ options between ordinary ones', () => {
    const params: Array<[string, string]> = [
      ['database', 'd'],
      ['_pq_.b', '1'],
      ['user', 'u'],
      ['_pq_.a', '2'],
      ['client_encoding', 'UTF8'],
    ];
    const p = readBack(encoded((w) => encodeStartupMessage(w, { parameters: params })));
    expect(p.type === 'StartupMessage' && [...p.parameters]).toEqual(params);
  });

  it('encodeStartupPacket dispatches every variant', () => {
    const packets: StartupPacket[] = [
      { type: 'SSLRequest' },
      { type: 'GSSENCRequest' },
      { type: 'CancelRequest', processId: -5, secretKey: Uint8Array.of(1, 2, 3, 4) },
      { type: 'StartupMessage', version: PROTOCOL_3_2, parameters: new Map([['user', 'x']]) },
    ];
    for (const p of packets) expect(readBack(encoded((w) => encodeStartupPacket(w, p)))).toEqual(p);
  });
});

describe('decodeStartupPacket', () => {
  it('accepts cancel keys of 1..256 bytes and refuses 0 and 257', () => {
    for (const n of [1, 3, 4, 32, 256]) {
      const p = decodeStartupPacket(bodyOf(CANCEL_REQUEST_CODE, new Uint8Array(4 + n).fill(7)));
      expect(p.type === 'CancelRequest' && p.secretKey.length).toBe(n);
    }
    for (const n of [0, 257]) {
      expectProtocolError(
        () => decodeStartupPacket(bodyOf(CANCEL_REQUEST_CODE, new Uint8Array(4 + n))),
        /invalid length of cancel key in cancel request packet/,
      );
    }
    for (const n of [0, 1, 3]) {
      expectProtocolError(
        () => decodeStartupPacket(bodyOf(CANCEL_REQUEST_CODE, new Uint8Array(n))),
        /invalid length of cancel request packet/,
      );
    }
  });

  it('decodes the process ID as a signed Int32', () => {
    const p = decodeStartupPacket(bodyOf(CANCEL_REQUEST_CODE, [0xff, 0xff, 0xff, 0xfe, 1, 2, 3, 4]));
    expect(p.type === 'CancelRequest' && p.processId).toBe(-2);
  });

  it('refuses SSLRequest/GSSENCRequest with extra bytes and bodies shorter than the code', () => {
    expectProtocolError(() => decodeStartupPacket(bodyOf(SSL_REQUEST_CODE, [0])), /SSL request/);
    expectProtocolError(() => decodeStartupPacket(bodyOf(GSSENC_REQUEST_CODE, [0, 0, 0, 0])), /GSSAPI/);
    for (let n = 0; n < 4; n++) expectProtocolError(() => decodeStartupPacket(new Uint8Array(n)));
  });

  it('refuses other major versions with the server wording', () => {
    expectProtocolError(
      () => decodeStartupPacket(bodyOf(protocolVersion(2, 0), [0])),
      /^unsupported frontend protocol 2\.0: server supports 3\.0 to 3\.2$/,
    );
    expectProtocolError(
      () => decodeStartupPacket(bodyOf(protocolVersion(4, 0), [0])),
      /unsupported frontend protocol 4\.0/,
    );
    // An unknown request code is just an unknown version to the server.
    expectProtocolError(
      () => decodeStartupPacket(bodyOf(protocolVersion(1234, 5681))),
      /unsupported frontend protocol 1234\.5681/,
    );
  });

  it('decodes any 3.x: 3.1 (reserved) and grease are for the server state machine to judge', () => {
    for (const v of [PROTOCOL_3_1, PROTOCOL_GREASE, protocolVersion(3, 0xffff)]) {
      const p = decodeStartupPacket(bodyOf(v, [...utf8('user\0u\0'), 0]));
      expect(p).toEqual({ type: 'StartupMessage', version: v, parameters: new Map([['user', 'u']]) });
    }
  });

  it('requires the terminator as the last byte', () => {
    const layout = /invalid startup packet layout: expected terminator as last byte/;
    const cases: number[][] = [
      [], // no terminator at all
      utf8('user\0u\0'), // pairs without terminator
      utf8('user\0u'), // unterminated value
      utf8('user\0'), // name without value
      utf8('user'), // unterminated name
      [...utf8('user\0u\0'), 0, 0], // a byte after the terminator
      [0, ...utf8('user\0u\0')], // terminator first, then more
    ];
    for (const c of cases) expectProtocolError(() => decodeStartupPacket(bodyOf(PROTOCOL_3_0, c)), layout);
  });

  it('fails at every truncation of a valid StartupMessage, and on trailing bytes', () => {
    const b = encoded((w) =>
      encodeStartupMessage(w, {
        parameters: [
          ['user', 'alice'],
          ['database', 'db'],
          ['_pq_.x', ''],
        ],
      }),
    );
    const body = b.subarray(4);
    for (let n = 0; n < body.length; n++) expectProtocolError(() => decodeStartupPacket(body.subarray(0, n)));
    const longer = new Uint8Array(body.length + 1);
    longer.set(body);
    expectProtocolError(() => decodeStartupPacket(longer));
    expect(decodeStartupPacket(body).type).toBe('StartupMessage');
  });

  it('refuses a duplicate parameter name', () => {
    expectProtocolError(
      () => decodeStartupPacket(bodyOf(PROTOCOL_3_0, [...utf8('user\0a\0user\0b\0'), 0])),
      /duplicate parameter "user"/,
    );
  });

  it('only ever returns a packet or throws ProtocolError on random bodies', () => {
    const prefix = fc.constantFrom(
      SSL_REQUEST_CODE,
      GSSENC_REQUEST_CODE,
      CANCEL_REQUEST_CODE,
      PROTOCOL_3_0,
      PROTOCOL_3_2,
      protocolVersion(2, 0),
    );
    const tail = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 255 })), { maxLength: 64 });
    const body = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.tuple(prefix, tail).map(([code, rest]) => bodyOf(code, rest)),
    );
    fc.assert(
      fc.property(body, (b) => {
        let p: StartupPacket;
        try {
          p = decodeStartupPacket(b);
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
          return;
        }
        // Whatever decodes encodes back to the same bytes (exactly so for ASCII: invalid UTF-8 in
        // a string decodes to U+FFFD).
        const again = encoded((w) => encodeStartupPacket(w, p));
        if (b.every((x) => x < 0x80) || p.type === 'CancelRequest')
          expect(hex(again.subarray(4))).toBe(hex(b));
      }),
      fcParams(),
    );
  });
});

describe('encoders', () => {
  it('refuse invalid input before writing anything', () => {
    const w = new Writer(8);
    encodeSSLRequest(w);
    const before = w.length;
    const refused: Array<[() => void, RegExp]> = [
      [() => encodeCancelRequest(w, 1, new Uint8Array(0)), /invalid length of cancel key/],
      [() => encodeCancelRequest(w, 1, new Uint8Array(257)), /invalid length of cancel key/],
      [() => encodeCancelRequest(w, 2 ** 31, new Uint8Array(4)), /invalid process ID/],
      [() => encodeCancelRequest(w, 1.5, new Uint8Array(4)), /invalid process ID/],
      [() => encodeStartupMessage(w, { parameters: [['us\0er', 'x']] }), /NUL/],
      [() => encodeStartupMessage(w, { parameters: [['user', 'x\0']] }), /NUL/],
      [() => encodeStartupMessage(w, { parameters: [['', 'x']] }), /must not be empty/],
      [
        () =>
          encodeStartupMessage(w, {
            parameters: [
              ['user', 'a'],
              ['user', 'b'],
            ],
          }),
        /duplicate startup parameter "user"/,
      ],
      [() => encodeStartupMessage(w, { version: -1, parameters: [] }), /invalid protocol version/],
      [() => encodeStartupMessage(w, { version: 2 ** 32, parameters: [] }), /invalid protocol version/],
    ];
    for (const [fn, msg] of refused) {
      expectProtocolError(fn, msg);
      expect(w.length).toBe(before);
    }
    // The Writer is still usable: no packet was left open.
    encodeGSSENCRequest(w);
    expect(hex(w.take())).toBe(norm('00 00 00 08 04 D2 16 2F 00 00 00 08 04 D2 16 30'));
  });

  it('let tests send versions the server refuses (e.g. 2.0)', () => {
    const b = encoded((w) => encodeStartupMessage(w, { version: protocolVersion(2, 0), parameters: [] }));
    expect(hex(b)).toBe(norm('00 00 00 09 00 02 00 00 00'));
    expectProtocolError(() => readBack(b), /unsupported frontend protocol 2\.0/);
  });

  it('round-trip through the Framer for arbitrary packets, coalesced and split', () => {
    const packet: fc.Arbitrary<StartupPacket> = fc.oneof(
      fc.constant<StartupPacket>({ type: 'SSLRequest' }),
      fc.constant<StartupPacket>({ type: 'GSSENCRequest' }),
      fc
        .record({
          processId: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
          secretKey: fc.uint8Array({ minLength: 1, maxLength: 256 }),
        })
        .map((r): StartupPacket => ({ type: 'CancelRequest', ...r })),
      fc
        .record({
          version: fc.oneof(
            fc.constantFrom(PROTOCOL_3_0, PROTOCOL_3_2, PROTOCOL_GREASE),
            fc.integer({ min: 0, max: 0xffff }).map((m) => protocolVersion(3, m)),
          ),
          parameters: fc
            .uniqueArray(fc.tuple(cstr(1, 12), cstr(0, 20)), {
              maxLength: 8,
              selector: ([k]) => k,
            })
            .map((pairs) => new Map(pairs)),
        })
        .map((r): StartupPacket => ({ type: 'StartupMessage', ...r })),
    );
    fc.assert(
      fc.property(
        fc.array(packet, { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 40 }),
        (ps, chunk) => {
          const w = new Writer(16);
          for (const p of ps) encodeStartupPacket(w, p);
          const bytes = w.take();
          const f = new Framer();
          const got: string[] = [];
          for (let i = 0; i < bytes.length; i += chunk) {
            f.push(bytes.subarray(i, i + chunk));
            for (;;) {
              const body = f.nextUntyped(STARTUP_MIN_LENGTH, STARTUP_MAX_LENGTH);
              if (body === null) break;
              // Serialized at once: views are only valid until the next push.
              got.push(show(decodeStartupPacket(body)));
            }
          }
          expect(got).toEqual(ps.map(show));
          expect(f.buffered).toBe(0);
        },
      ),
      fcParams(),
    );
  });
});

describe('negotiation replies', () => {
  it('classifies every byte and never throws', () => {
    const known: Record<number, string> = { 83: 'ssl', 71: 'gss', 78: 'refused', 69: 'error' };
    for (let b = -1; b < 256; b++) {
      expect(decodeNegotiationReply(b)).toEqual({ kind: known[b] ?? 'invalid', byte: b });
    }
  });

  it('encodes the server replies as single unframed bytes', () => {
    const b = encoded((w) => {
      encodeNegotiationReply(w, 'ssl');
      encodeNegotiationReply(w, 'gss');
      encodeNegotiationReply(w, 'refused');
    });
    expect(hex(b)).toBe('53 47 4e');
    const f = new Framer();
    f.push(b);
    expect(decodeNegotiationReply(f.readByte()).kind).toBe('ssl');
    expect(decodeNegotiationReply(f.readByte()).kind).toBe('gss');
    expect(decodeNegotiationReply(f.readByte()).kind).toBe('refused');
    expect(decodeNegotiationReply(f.readByte()).kind).toBe('invalid'); // -1: nothing buffered
  });
});
