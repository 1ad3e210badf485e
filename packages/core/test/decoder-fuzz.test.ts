/**
 * Decoder fuzzing (issue 8): every decoder that reads bytes from the network, fed valid messages
 * damaged by random mutations (bit flips, boundary bytes, lying counts and lengths, truncation,
 * insertion, duplication, deletion) and plain random bytes. The per-codec files throw random bodies
 * at the decoders; mutations of valid messages get past the first fields into the nested counts and
 * strings where the interesting bugs live.
 *
 * Invariants, for every input:
 * - a result or a typed error (ProtocolError; AuthError for the certificate parser), never a
 *   RangeError/TypeError or anything else;
 * - memory bounded by the input: byte arrays in the result are views into the input (no copy, so no
 *   allocation sized by an untrusted length), and the result holds no more array slots, string
 *   characters and bytes in total than the body has bytes.
 *
 * `FUZZ_RUNS` (set by `npm run fuzz`) scales every property; `FC_RANDOM=1` draws a fresh seed.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tlsServerEndPointHash } from '../src/auth/channel-binding.ts';
import { certificateNames } from '../src/client/verify.ts';
import {
  type BackendMessage,
  type BackendMessageOf,
  type BackendMessageType,
  decodeBackend,
  encodeBackend,
} from '../src/codec/backend.ts';
import { BackendType, FrontendType } from '../src/codec/constants.ts';
import { decodeDataRowText } from '../src/codec/datarow.ts';
import { Framer } from '../src/codec/framer.ts';
import {
  decodeFrontend,
  encodeFrontend,
  type FrontendDecodeContext,
  type FrontendMessage,
  type FrontendMessageOf,
  type FrontendMessageType,
} from '../src/codec/frontend.ts';
import { decodeStartupPacket, encodeStartupPacket, type StartupPacket } from '../src/codec/startup.ts';
import { Writer } from '../src/codec/writer.ts';
import { AuthError, ProtocolError, TlsError } from '../src/errors.ts';
import { FUZZ_TIMEOUT, fcParams, fuzzRuns } from './fc.ts';
import { type OpensslDir, opensslDir } from './openssl.ts';

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);

function encoded(fn: (w: Writer) => void): Uint8Array {
  const w = new Writer(64);
  fn(w);
  return w.take();
}

// ---------------------------------------------------------------------------------------------------
// Corpora: one valid message of every type (the mapped types make a missing one a compile error),
// with non-empty counts and strings so that mutations reach every field.

const BACKEND: { [T in BackendMessageType]: BackendMessageOf<T>[] } = {
  AuthenticationOk: [{ type: 'AuthenticationOk' }],
  AuthenticationKerberosV5: [{ type: 'AuthenticationKerberosV5' }],
  AuthenticationCleartextPassword: [{ type: 'AuthenticationCleartextPassword' }],
  AuthenticationMD5Password: [{ type: 'AuthenticationMD5Password', salt: bytes(1, 2, 3, 4) }],
  AuthenticationGSS: [{ type: 'AuthenticationGSS' }],
  AuthenticationGSSContinue: [{ type: 'AuthenticationGSSContinue', data: bytes(9, 8, 7) }],
  AuthenticationSSPI: [{ type: 'AuthenticationSSPI' }],
  AuthenticationSASL: [{ type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] }],
  AuthenticationSASLContinue: [
    {
      type: 'AuthenticationSASLContinue',
      data: new TextEncoder().encode('r=abcdef,s=QSXCR+Q6sek8bf92,i=4096'),
    },
  ],
  AuthenticationSASLFinal: [
    {
      type: 'AuthenticationSASLFinal',
      data: new TextEncoder().encode('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='),
    },
  ],
  BackendKeyData: [
    { type: 'BackendKeyData', processId: 4242, secretKey: bytes(1, 2, 3, 4) },
    { type: 'BackendKeyData', processId: -1, secretKey: new Uint8Array(32).fill(7) },
  ],
  BindComplete: [{ type: 'BindComplete' }],
  CloseComplete: [{ type: 'CloseComplete' }],
  CommandComplete: [{ type: 'CommandComplete', tag: 'SELECT 1' }],
  CopyData: [{ type: 'CopyData', data: bytes(0x78, 0x0a) }],
  CopyDone: [{ type: 'CopyDone' }],
  CopyInResponse: [{ type: 'CopyInResponse', format: 0, columnFormats: [0, 0, 1] }],
  CopyOutResponse: [{ type: 'CopyOutResponse', format: 1, columnFormats: [1] }],
  CopyBothResponse: [{ type: 'CopyBothResponse', format: 0, columnFormats: [] }],
  DataRow: [{ type: 'DataRow', fields: [bytes(0x31), null, new Uint8Array(0), bytes(0xc3, 0xa9)] }],
  EmptyQueryResponse: [{ type: 'EmptyQueryResponse' }],
  ErrorResponse: [
    {
      type: 'ErrorResponse',
      fields: {
        severity: 'FATAL',
        code: '28P01',
        message: 'password authentication failed',
        unknown: { Z: 'z' },
      },
    },
  ],
  NoticeResponse: [{ type: 'NoticeResponse', fields: { severity: 'NOTICE', message: 'hi', line: '12' } }],
  FunctionCallResponse: [
    { type: 'FunctionCallResponse', result: bytes(0, 0, 0, 1) },
    { type: 'FunctionCallResponse', result: null },
  ],
  NegotiateProtocolVersion: [
    { type: 'NegotiateProtocolVersion', version: 0x0003_0000, unrecognizedOptions: ['_pq_.a', '_pq_.b'] },
  ],
  NoData: [{ type: 'NoData' }],
  NotificationResponse: [{ type: 'NotificationResponse', processId: 7, channel: 'ch', payload: 'p' }],
  ParameterDescription: [{ type: 'ParameterDescription', typeOids: [23, 25, 0xffff_ffff] }],
  ParameterStatus: [{ type: 'ParameterStatus', name: 'server_version', value: '18.4' }],
  ParseComplete: [{ type: 'ParseComplete' }],
  PortalSuspended: [{ type: 'PortalSuspended' }],
  ReadyForQuery: [{ type: 'ReadyForQuery', status: 'I' }],
  RowDescription: [
    {
      type: 'RowDescription',
      fields: [
        { name: 'a', tableOid: 1, columnAttr: 1, typeOid: 23, typeSize: 4, typeModifier: -1, format: 0 },
        { name: '', tableOid: 0, columnAttr: 0, typeOid: 25, typeSize: -1, typeModifier: -1, format: 1 },
      ],
    },
  ],
};

const FRONTEND: { [T in FrontendMessageType]: FrontendMessageOf<T>[] } = {
  PasswordMessage: [{ type: 'PasswordMessage', password: 'md5abc' }],
  SASLInitialResponse: [
    {
      type: 'SASLInitialResponse',
      mechanism: 'SCRAM-SHA-256',
      data: new TextEncoder().encode('n,,n=,r=abc'),
    },
    { type: 'SASLInitialResponse', mechanism: 'M', data: null },
  ],
  SASLResponse: [{ type: 'SASLResponse', data: bytes(0x63, 0x3d) }],
  GSSResponse: [{ type: 'GSSResponse', data: bytes(1, 2) }],
  Query: [{ type: 'Query', sql: 'select 1' }],
  Parse: [{ type: 'Parse', name: 's', query: 'select $1', paramTypes: [23, 0] }],
  Bind: [
    {
      type: 'Bind',
      portal: 'p',
      statement: 's',
      paramFormats: [1],
      params: [bytes(0, 0, 0, 1), null],
      resultFormats: [0, 1],
    },
  ],
  Describe: [{ type: 'Describe', target: 'S', name: 's' }],
  Execute: [{ type: 'Execute', portal: 'p', maxRows: 10 }],
  Sync: [{ type: 'Sync' }],
  Flush: [{ type: 'Flush' }],
  Close: [{ type: 'Close', target: 'P', name: 'p' }],
  CopyData: [{ type: 'CopyData', data: bytes(0x61, 0x0a) }],
  CopyDone: [{ type: 'CopyDone' }],
  CopyFail: [{ type: 'CopyFail', message: 'nope' }],
  FunctionCall: [
    { type: 'FunctionCall', oid: 1598, argFormats: [1], args: [bytes(0, 0, 0, 1), null], resultFormat: 1 },
  ],
  Terminate: [{ type: 'Terminate' }],
};

const STARTUP: StartupPacket[] = [
  { type: 'SSLRequest' },
  { type: 'GSSENCRequest' },
  { type: 'CancelRequest', processId: 99, secretKey: bytes(1, 2, 3, 4) },
  { type: 'CancelRequest', processId: 99, secretKey: new Uint8Array(32).fill(3) },
  {
    type: 'StartupMessage',
    version: 0x0003_0002,
    parameters: new Map([
      ['user', 'alice'],
      ['database', 'db'],
      ['_pq_.x', ''],
    ]),
  },
];

/** Type byte followed by the body (the length word is the Framer's business, fuzzed below). */
const typedCorpus = (wire: Uint8Array[]): Uint8Array[] =>
  wire.map((m) => Uint8Array.of(m[0]!, ...m.subarray(5)));

const backendWire = Object.values(BACKEND)
  .flat()
  .map((m) => encoded((w) => encodeBackend(w, m as BackendMessage)));
const frontendWire = Object.values(FRONTEND)
  .flat()
  .map((m) => encoded((w) => encodeFrontend(w, m as FrontendMessage)));
/** Startup packets without their length word. */
const startupBodies = STARTUP.map((p) => encoded((w) => encodeStartupPacket(w, p)).subarray(4));

// ---------------------------------------------------------------------------------------------------
// Mutations

/** Values a lying count or length likes to take. */
const WORDS = [
  0, 1, 2, 3, 4, 5, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff,
];

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'word16' | 'word32'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; data: Uint8Array }
  | { kind: 'duplicate'; at: number; length: number }
  | { kind: 'delete'; at: number; length: number };

const position = fc.nat(1 << 16);
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: position, bit: fc.nat(7) }),
  fc.record({
    kind: fc.constant('set' as const),
    at: position,
    value: fc.oneof(fc.constantFrom(0, 1, 0x2c, 0x3d, 0x7f, 0x80, 0xff), fc.nat(255)),
  }),
  fc.record({
    kind: fc.constantFrom('word16' as const, 'word32' as const),
    at: position,
    value: fc.oneof(fc.constantFrom(...WORDS), fc.nat(0xffff_ffff)),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at: position }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: position,
    data: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  fc.record({
    kind: fc.constant('duplicate' as const),
    at: position,
    length: fc.integer({ min: 1, max: 16 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), at: position, length: fc.integer({ min: 1, max: 8 }) }),
);

/** Applies a mutation; positions wrap around the input so every byte can be hit. */
function mutate(input: Uint8Array, m: Mutation): Uint8Array {
  const n = input.length;
  const at = n === 0 ? 0 : m.at % (n + 1);
  const out = input.slice();
  switch (m.kind) {
    case 'flip':
      if (at < n) out[at]! ^= 1 << m.bit;
      return out;
    case 'set':
      if (at < n) out[at] = m.value;
      return out;
    case 'word16':
    case 'word32': {
      const size = m.kind === 'word16' ? 2 : 4;
      for (let i = 0; i < size && at + i < n; i++) out[at + i] = (m.value >>> (8 * (size - 1 - i))) & 0xff;
      return out;
    }
    case 'truncate':
      return out.subarray(0, at);
    case 'insert':
      return Uint8Array.of(...input.subarray(0, at), ...m.data, ...input.subarray(at));
    case 'duplicate':
      return Uint8Array.of(...input.subarray(0, at + m.length), ...input.subarray(at));
    case 'delete':
      return Uint8Array.of(...input.subarray(0, at), ...input.subarray(at + m.length));
  }
}

/** A corpus entry damaged by 1–4 mutations, or (one time in eight) plain random bytes. */
const damaged = (corpus: Uint8Array[]): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    {
      weight: 7,
      arbitrary: fc
        .tuple(fc.constantFrom(...corpus), fc.array(mutation, { minLength: 1, maxLength: 4 }))
        .map(([input, ms]) => ms.reduce(mutate, input)),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  );

// ---------------------------------------------------------------------------------------------------
// Invariants

/** Rethrows anything but the typed errors: a RangeError, or a failed assertion from the try block. */
function expectTyped(e: unknown, ...types: Array<abstract new (...args: never[]) => Error>): void {
  if (!types.some((t) => e instanceof t)) throw e;
}

/**
 * What a decoded value holds beyond its fixed shape: array slots, string characters, bytes and map
 * entries. Byte arrays must be views into `input` (zero-copy: nothing allocated for an announced
 * length). The `type` discriminant is the decoder's own constant, not data, and is skipped.
 */
function weight(value: unknown, input: ArrayBufferLike): number {
  if (value === null || value === undefined || typeof value === 'number' || typeof value === 'boolean')
    return 0;
  if (typeof value === 'string') return value.length;
  if (value instanceof Uint8Array) {
    expect(value.buffer, 'a decoded byte array must be a view into the input').toBe(input);
    return value.length;
  }
  if (Array.isArray(value)) return value.reduce((sum: number, v) => sum + 1 + weight(v, input), 0);
  if (value instanceof Map) {
    let sum = 0;
    for (const [k, v] of value) sum += 1 + weight(k, input) + weight(v, input);
    return sum;
  }
  let sum = 0;
  for (const [k, v] of Object.entries(value)) if (k !== 'type') sum += weight(v, input);
  return sum;
}

function expectBounded(result: unknown, body: Uint8Array): void {
  expect(weight(result, body.buffer)).toBeLessThanOrEqual(body.length);
}

/**
 * Runs a decoder on every generated input (`prepare` gives the body and the call, or null to skip):
 * each either throws a ProtocolError or returns a result bounded by the body. Returns how many
 * decoded, so a test can check the success path was reached.
 */
function checkDecoder<T>(
  inputs: fc.Arbitrary<T>,
  runs: number,
  prepare: (input: T) => { body: Uint8Array; decode: (body: Uint8Array) => unknown } | null,
): number {
  let decoded = 0;
  fc.assert(
    fc.property(inputs, (input) => {
      const p = prepare(input);
      if (!p) return;
      let result: unknown;
      try {
        result = p.decode(p.body);
      } catch (e) {
        expectTyped(e, ProtocolError);
        return;
      }
      expectBounded(result, p.body);
      decoded++;
    }),
    fcParams(fuzzRuns(runs)),
  );
  return decoded;
}

const frontendContexts: FrontendDecodeContext[] = [
  {},
  { passwordMessage: 'password' },
  { passwordMessage: 'sasl-initial' },
  { passwordMessage: 'sasl' },
  { passwordMessage: 'gss' },
];

// ---------------------------------------------------------------------------------------------------

describe('decoder fuzzing: damaged valid messages', () => {
  it('covers every backend and frontend message type', () => {
    expect(backendWire).toHaveLength(Object.values(BACKEND).flat().length);
    const sorted = (xs: Iterable<number | undefined>) => [...new Set(xs)].sort();
    expect(sorted(backendWire.map((m) => m[0]))).toEqual(sorted(Object.values(BackendType)));
    expect(sorted(frontendWire.map((m) => m[0]))).toEqual(sorted(Object.values(FrontendType)));
  });

  it(
    'decodeBackend: a message or a ProtocolError, bounded by the body',
    () => {
      const decoded = checkDecoder(damaged(typedCorpus(backendWire)), 3000, (input) =>
        input.length === 0
          ? null
          : { body: input.subarray(1), decode: (body) => decodeBackend({ type: input[0]!, body }) },
      );
      // Not every mutation breaks a message (a flipped bit in a string stays a string): the corpus
      // must keep reaching the success path, or the property checks only the error path.
      expect(decoded).toBeGreaterThan(0);
    },
    FUZZ_TIMEOUT,
  );

  it(
    'decodeFrontend in every password-message context: a message or a ProtocolError, bounded by the body',
    () => {
      const inputs = fc.tuple(damaged(typedCorpus(frontendWire)), fc.constantFrom(...frontendContexts));
      const decoded = checkDecoder(inputs, 3000, ([input, ctx]) =>
        input.length === 0
          ? null
          : { body: input.subarray(1), decode: (body) => decodeFrontend({ type: input[0]!, body }, ctx) },
      );
      expect(decoded).toBeGreaterThan(0);
    },
    FUZZ_TIMEOUT,
  );

  it(
    'decodeStartupPacket: a packet or a ProtocolError, bounded by the body',
    () => {
      expect(
        checkDecoder(damaged(startupBodies), 2000, (body) => ({ body, decode: decodeStartupPacket })),
      ).toBeGreaterThan(0);
    },
    FUZZ_TIMEOUT,
  );

  it(
    'decodeDataRowText: strings or a ProtocolError, bounded by the body',
    () => {
      const rows = typedCorpus(backendWire.filter((m) => m[0] === 0x44)).map((m) => m.subarray(1));
      expect(
        checkDecoder(damaged(rows), 2000, (body) => ({ body, decode: decodeDataRowText })),
      ).toBeGreaterThan(0);
    },
    FUZZ_TIMEOUT,
  );
});

describe('decoder fuzzing: damaged streams through the Framer', () => {
  /**
   * Whole streams of valid messages, damaged anywhere (length words included), pushed in random
   * chunks with a small message limit: the framer and decoder together yield messages until the
   * first ProtocolError, and never hold more than what arrived.
   */
  const run = (wire: Uint8Array[], decode: (type: number, body: Uint8Array) => unknown) =>
    fc.property(
      fc.array(fc.constantFrom(...wire), { minLength: 1, maxLength: 16 }),
      fc.array(mutation, { minLength: 1, maxLength: 3 }),
      fc.integer({ min: 1, max: 64 }),
      (messages, ms, step) => {
        const stream = ms.reduce(mutate, Uint8Array.from(messages.flatMap((m) => [...m])));
        const f = new Framer({ maxMessageLength: 4096 });
        let received = 0;
        try {
          for (let i = 0; i < stream.length; i += step) {
            const chunk = stream.slice(i, i + step);
            received += chunk.length;
            f.push(chunk);
            for (let m = f.next(); m !== null; m = f.next()) decode(m.type, m.body);
            expect(f.buffered).toBeLessThanOrEqual(received);
          }
        } catch (e) {
          expectTyped(e, ProtocolError);
        }
      },
    );

  it(
    'backend stream',
    () => {
      fc.assert(
        run(backendWire, (type, body) => decodeBackend({ type, body })),
        fcParams(fuzzRuns(1000)),
      );
    },
    FUZZ_TIMEOUT,
  );

  it(
    'frontend stream',
    () => {
      fc.assert(
        run(frontendWire, (type, body) => decodeFrontend({ type, body }, { passwordMessage: 'sasl' })),
        fcParams(fuzzRuns(1000)),
      );
    },
    FUZZ_TIMEOUT,
  );
});

describe('decoder fuzzing: the peer certificate (DER) behind tls-server-end-point', () => {
  // Under sslmode=require the certificate is not verified, so its DER is attacker-chosen when
  // SCRAM-SHA-256-PLUS reads the signature algorithm out of it.
  let tmp: OpensslDir | undefined;
  const certs: Uint8Array[] = [];

  beforeAll(() => {
    tmp = opensslDir('pgconn-der-');
    tmp.openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'ec.key');
    tmp.openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', 'rsa.key');
    certs.push(tmp.cert('ec', ['-key', 'ec.key'], ['-sha384']));
    certs.push(tmp.cert('pss', ['-key', 'rsa.key'], ['-sha256', '-sigopt', 'rsa_padding_mode:pss']));
    const sans = ['-addext', 'subjectAltName=DNS:db.test,IP:192.0.2.1,IP:2001:db8::2,email:a@db.test'];
    certs.push(tmp.cert('sans', ['-key', 'ec.key'], ['-sha256', ...sans]));
  }, 30_000);

  afterAll(() => tmp?.remove());

  it(
    'a hash or an AuthError, whatever the bytes',
    async () => {
      let hashed = 0;
      await fc.assert(
        fc.asyncProperty(damaged(certs), async (der) => {
          try {
            const hash = await tlsServerEndPointHash(der);
            // SHA-224 family 28, SHA-256 family 32, SHA-384 48, SHA-512 64.
            expect([28, 32, 48, 64]).toContain(hash.length);
            hashed++;
          } catch (e) {
            expectTyped(e, AuthError);
          }
        }),
        fcParams(fuzzRuns(500)),
      );
      expect(hashed).toBeGreaterThan(0);
    },
    FUZZ_TIMEOUT,
  );

  it(
    'the names verify-full reads, or a TlsError, whatever the bytes',
    () => {
      let named = 0;
      fc.assert(
        fc.property(damaged(certs), (der) => {
          try {
            const { altNames, commonNames } = certificateNames(der);
            // Every name is a slice of the certificate: never more characters than it has bytes.
            let chars = 0;
            for (const n of altNames) chars += n.kind === 'dns' ? n.name.length : n.address.length;
            for (const cn of commonNames) chars += cn.length;
            expect(chars).toBeLessThanOrEqual(der.length);
            named++;
          } catch (e) {
            expectTyped(e, TlsError);
          }
        }),
        fcParams(fuzzRuns(500)),
      );
      expect(named).toBeGreaterThan(0);
    },
    FUZZ_TIMEOUT,
  );
});
