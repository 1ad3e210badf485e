/**
 * Hostile input for ClientHandshake (issue 8, part 1): random configurations (every sslmode,
 * sslnegotiation, channel_binding, require_auth, password or none) driven by random and mutated server
 * transcripts — bit flips, truncation, insertion, duplication, random chunk splits — interleaved with
 * connected / tlsEstablished / tlsFailed / closed / timeout events at random points, plus an honest
 * in-memory server (trust, cleartext, MD5, SCRAM) whose output is damaged at one random byte.
 *
 * Invariants: handle() never throws or rejects; the only error is a typed PgConnError in `fail`;
 * after `fail` or `done` nothing more is emitted (no write); with sslmode=require/verify-* nothing but
 * an SSLRequest is written before TLS is up on the current connection, so the password never crosses
 * in plaintext.
 *
 * CI: fixed seed (FC_RANDOM=1 adds a random one); FUZZ_RUNS raises the run count (`npm run fuzz`).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { md5PasswordResponse } from '../src/auth/md5.ts';
import { ScramServer, scramVerifier } from '../src/auth/scram.ts';
import {
  type ClientAction,
  type ClientEvent,
  ClientHandshake,
  type HandshakeConfig,
} from '../src/client/handshake.ts';
import { parseRequireAuth } from '../src/client/require-auth.ts';
import type { SslMode } from '../src/client/sslmode.ts';
import { type BackendMessage, encodeBackend } from '../src/codec/backend.ts';
import { Framer } from '../src/codec/framer.ts';
import { decodeFrontend } from '../src/codec/frontend.ts';
import { Writer } from '../src/codec/writer.ts';
import {
  AuthError,
  ConnectionError,
  PgConnError,
  ProtocolError,
  ServerError,
  TlsError,
  UnsupportedError,
} from '../src/errors.ts';
import type { TlsInfo } from '../src/transport.ts';
import { fcParams, fuzzRuns as runs, FUZZ_TIMEOUT as TIMEOUT } from './fc.ts';

const PASSWORD = 'Fuzz-Secret-9q7';
const PASSWORD_BYTES = new TextEncoder().encode(PASSWORD);
const SSL_REQUEST = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
const STRICT: ReadonlySet<SslMode> = new Set(['require', 'verify-ca', 'verify-full']);

const server = (...msgs: BackendMessage[]): Uint8Array => {
  const w = new Writer();
  for (const m of msgs) encodeBackend(w, m);
  return w.take();
};

const concat = (parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

const contains = (hay: Uint8Array, needle: Uint8Array): boolean => {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
};

const TYPED = [ConnectionError, TlsError, ProtocolError, AuthError, ServerError, UnsupportedError];

/** A self-signed certificate's DER (any bytes do for most paths; a real one lets PLUS hash it). */
const FAKE_CERT = Uint8Array.of(0x30, 0x82, 0x01, 0x0a, 0x30, 0x81, 0x01, 0x02);

const configArb: fc.Arbitrary<HandshakeConfig> = fc
  .record({
    sslmode: fc.constantFrom<SslMode>('disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'),
    sslnegotiation: fc.constantFrom<'postgres' | 'direct' | undefined>('postgres', 'direct', undefined),
    channelBinding: fc.constantFrom<'disable' | 'prefer' | 'require' | undefined>(
      'disable',
      'prefer',
      'require',
      undefined,
    ),
    requireAuth: fc.constantFrom(
      undefined,
      'scram-sha-256',
      'md5',
      'password',
      '!password',
      'none',
      'md5,scram-sha-256',
      '!none',
    ),
    password: fc.constantFrom<string | undefined>(PASSWORD, PASSWORD, undefined, ''),
    rootCert: fc.constantFrom<string[] | 'system' | undefined>(undefined, ['PEM'], 'system'),
    maxProtocolVersion: fc.constantFrom<number | undefined>(undefined, 0x0003_0000, 0x0003_0002),
    scramMaxIterations: fc.constantFrom<number | undefined>(undefined, 16, 100_000),
    cancel: fc.constantFrom(false, false, false, true),
  })
  .map((r) => ({
    host: 'localhost',
    user: 'alice',
    database: 'db',
    sslmode: r.sslmode,
    ...(r.sslnegotiation ? { sslnegotiation: r.sslnegotiation } : {}),
    ...(r.channelBinding ? { channelBinding: r.channelBinding } : {}),
    ...(r.requireAuth ? { requireAuth: parseRequireAuth(r.requireAuth) } : {}),
    ...(r.password !== undefined ? { password: r.password } : {}),
    ...(r.rootCert !== undefined ? { tls: { rootCert: r.rootCert } } : {}),
    ...(r.maxProtocolVersion ? { maxProtocolVersion: r.maxProtocolVersion } : {}),
    ...(r.scramMaxIterations ? { scramMaxIterations: r.scramMaxIterations } : {}),
    ...(r.cancel ? { cancel: { processId: 7, secretKey: Uint8Array.of(1, 2, 3, 4) } } : {}),
  }));

const tlsInfoArb: fc.Arbitrary<TlsInfo> = fc
  .record({
    authorized: fc.boolean(),
    alpn: fc.constantFrom<string | null>('postgresql', null, 'http/1.1'),
    cert: fc.constantFrom<Uint8Array | undefined>(undefined, FAKE_CERT, new Uint8Array(0)),
    authorizationError: fc.constantFrom(undefined, 'CERT_HAS_EXPIRED'),
  })
  .map((r) => ({
    authorized: r.authorized,
    alpnProtocol: r.alpn,
    protocol: 'TLSv1.3',
    ...(r.cert ? { peerCertificate: r.cert } : {}),
    ...(r.authorizationError ? { authorizationError: r.authorizationError } : {}),
  }));

const READY: BackendMessage[] = [
  { type: 'ParameterStatus', name: 'server_version', value: '15.8' },
  { type: 'BackendKeyData', processId: 42, secretKey: Uint8Array.of(1, 2, 3, 4) },
  { type: 'ReadyForQuery', status: 'I' },
];

const enc = new TextEncoder();

/** Server messages a transcript is built from: valid for some state, hostile for others. */
const segmentArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.constantFrom(Uint8Array.of(0x53), Uint8Array.of(0x4e), Uint8Array.of(0x45), Uint8Array.of(0x58)),
  fc.constant(server({ type: 'AuthenticationOk' })),
  fc.constant(server({ type: 'AuthenticationCleartextPassword' })),
  fc.constant(server({ type: 'AuthenticationMD5Password', salt: Uint8Array.of(1, 2, 3, 4) })),
  fc
    .subarray(['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS', 'BOGUS'])
    .map((m) => server({ type: 'AuthenticationSASL', mechanisms: m })),
  fc
    .constantFrom(
      'r=abc,s=c2FsdA==,i=4096',
      'r=,s=,i=0',
      'r=x,s=c2FsdA==,i=999999999',
      'garbage',
      'r=abcdef,s=!!!,i=-1',
    )
    .map((d) => server({ type: 'AuthenticationSASLContinue', data: enc.encode(d) })),
  fc
    .constantFrom('v=AAAA', 'e=invalid-proof', 'nonsense')
    .map((d) => server({ type: 'AuthenticationSASLFinal', data: enc.encode(d) })),
  fc.constant(server({ type: 'AuthenticationGSS' })),
  fc.constant(server({ type: 'AuthenticationKerberosV5' })),
  fc.constant(server({ type: 'NegotiateProtocolVersion', version: 0x0003_0000, unrecognizedOptions: [] })),
  fc.constant(
    server({ type: 'NegotiateProtocolVersion', version: 0x0003_0000, unrecognizedOptions: ['_pq_.x'] }),
  ),
  fc.constant(
    server({ type: 'ErrorResponse', fields: { severity: 'FATAL', code: '28P01', message: 'nope' } }),
  ),
  fc.constant(
    server({ type: 'ErrorResponse', fields: { severity: 'FATAL', code: '57P03', message: 'starting' } }),
  ),
  fc.constant(server({ type: 'NoticeResponse', fields: { severity: 'NOTICE', message: 'hi' } })),
  fc.constant(server(...READY)),
  // BackendKeyData with a 3- or 257-byte key (the encoder refuses them: built by hand).
  fc.constantFrom(3, 257).map((n) => {
    const len = 8 + n;
    return concat([
      Uint8Array.of(0x4b, len >>> 24, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff),
      new Uint8Array(4 + n),
    ]);
  }),
  fc.constant(server({ type: 'ReadyForQuery', status: 'T' })),
  // Length words of 2^31-1, 0 and 3 behind a valid type byte.
  fc
    .constantFrom(0x52, 0x45, 0x53, 0x5a)
    .chain((t) =>
      fc
        .constantFrom(0x7fff_ffff, 0, 3, 30_001)
        .map((len) => Uint8Array.of(t, len >>> 24, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff)),
    ),
  fc.uint8Array({ minLength: 1, maxLength: 24 }),
);

/** Valid transcripts to mutate: what a server would send for common flows. */
const transcriptArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.constant(concat([Uint8Array.of(0x4e), server({ type: 'AuthenticationOk' }, ...READY)])),
  fc.constant(concat([Uint8Array.of(0x4e), server({ type: 'AuthenticationCleartextPassword' })])),
  fc.constant(server({ type: 'AuthenticationMD5Password', salt: Uint8Array.of(9, 8, 7, 6) })),
  fc.constant(
    concat([
      Uint8Array.of(0x53),
      server({ type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] }),
      server({ type: 'AuthenticationSASLContinue', data: enc.encode('r=abcdef,s=c2FsdA==,i=4096') }),
      server({ type: 'AuthenticationSASLFinal', data: enc.encode('v=AAAA') }),
      server({ type: 'AuthenticationOk' }, ...READY),
    ]),
  ),
  fc.array(segmentArb, { minLength: 1, maxLength: 8 }).map(concat),
);

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'duplicate'; at: number; len: number }
  | { kind: 'delete'; at: number; len: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 8 }) }),
);

function mutate(bytes: Uint8Array, muts: Mutation[]): Uint8Array {
  let b = bytes;
  for (const m of muts) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1);
    switch (m.kind) {
      case 'flip':
        if (b.length > 0) {
          b = b.slice();
          const i = m.at % b.length;
          b[i] = b[i]! ^ (1 << m.bit);
        }
        break;
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'insert':
        b = concat([b.slice(0, at), m.bytes, b.slice(at)]);
        break;
      case 'duplicate':
        b = concat([b.slice(0, at + m.len), b.slice(at, at + m.len), b.slice(at + m.len)]);
        break;
      case 'delete':
        b = concat([b.slice(0, at), b.slice(at + m.len)]);
        break;
    }
  }
  return b;
}

function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const n = cuts.length === 0 ? bytes.length : cuts[i % cuts.length]!;
    chunks.push(bytes.slice(at, at + n));
    at += n;
  }
  return chunks;
}

type Step =
  | 'auto'
  | 'data'
  | { type: 'tlsEstablished'; info: TlsInfo }
  | { type: 'tlsFailed' }
  | { type: 'closed'; withError: boolean }
  | { type: 'timeout' }
  | { type: 'connected' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 10, arbitrary: fc.constant<Step>('auto') },
  { weight: 10, arbitrary: fc.constant<Step>('data') },
  { weight: 2, arbitrary: tlsInfoArb.map<Step>((info) => ({ type: 'tlsEstablished', info })) },
  { weight: 1, arbitrary: fc.constant<Step>({ type: 'tlsFailed' }) },
  { weight: 1, arbitrary: fc.boolean().map<Step>((withError) => ({ type: 'closed', withError })) },
  { weight: 1, arbitrary: fc.constant<Step>({ type: 'timeout' }) },
  { weight: 1, arbitrary: fc.constant<Step>({ type: 'connected' }) },
);

/**
 * Checks every batch of actions as a driver would perform them and tracks the security property:
 * under a strict sslmode, before TLS is up on the current socket only the SSLRequest may be written.
 */
class Monitor {
  ended = false;
  tlsUp = false;
  /** The action a driver would react to next. */
  pending: ClientAction | null = null;
  readonly writes: Uint8Array[] = [];
  constructor(private readonly cfg: HandshakeConfig) {}

  check(actions: ClientAction[]): void {
    for (const a of actions) {
      expect(this.ended, `${a.type} after the handshake ended`).toBe(false);
      switch (a.type) {
        case 'connect':
          this.tlsUp = false;
          this.pending = a;
          break;
        case 'close':
          this.tlsUp = false;
          break;
        case 'startTls':
          this.pending = a;
          break;
        case 'write': {
          expect(a.bytes.length).toBeGreaterThan(0);
          this.writes.push(a.bytes);
          if (STRICT.has(this.cfg.sslmode ?? 'prefer') && !this.tlsUp) {
            expect([...a.bytes], 'plaintext write under a strict sslmode').toEqual(SSL_REQUEST);
          }
          if (!this.tlsUp && this.cfg.sslmode !== 'disable' && this.cfg.sslmode !== 'allow') {
            // prefer may legitimately send a cleartext password after 'N'; the strict modes never.
            if (STRICT.has(this.cfg.sslmode ?? 'prefer'))
              expect(contains(a.bytes, PASSWORD_BYTES)).toBe(false);
          }
          break;
        }
        case 'fail':
          expect(a.error).toBeInstanceOf(PgConnError);
          expect(
            TYPED.some((T) => a.error instanceof T),
            `untyped ${a.error.name}`,
          ).toBe(true);
          this.ended = true;
          break;
        case 'done':
          this.ended = true;
          break;
        default:
          throw new Error(`unknown action ${(a as { type: string }).type}`);
      }
    }
  }
}

async function feed(hs: ClientHandshake, m: Monitor, e: ClientEvent): Promise<void> {
  let actions: ClientAction[];
  try {
    actions = await hs.handle(e);
  } catch (err) {
    throw new Error(`handle(${e.type}) threw: ${(err as Error).stack}`);
  }
  if (e.type === 'tlsEstablished' && actions.every((a) => a.type !== 'fail' && a.type !== 'close'))
    m.tlsUp = hs.state !== 'BAD' && hs.state !== 'NEEDED' && hs.state !== 'STARTED';
  m.check(actions);
  if (m.ended) {
    // Anything more is ignored: no action at all.
    expect(await hs.handle({ type: 'data', bytes: Uint8Array.of(0x52) })).toEqual([]);
    expect(await hs.handle({ type: 'closed' })).toEqual([]);
  }
}

describe('ClientHandshake under hostile input', () => {
  it(
    'random configs, mutated transcripts, random chunking and events: typed failures only, nothing after the end',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          configArb,
          transcriptArb,
          fc.array(mutationArb, { maxLength: 3 }),
          fc.array(fc.integer({ min: 1, max: 48 }), { maxLength: 8 }),
          fc.array(stepArb, { minLength: 1, maxLength: 30 }),
          tlsInfoArb,
          async (cfg, transcript, muts, cuts, steps, autoTls) => {
            const hs = new ClientHandshake(cfg);
            const m = new Monitor(cfg);
            const first = hs.start();
            m.check(first);
            if (m.ended) return;
            const chunks = split(mutate(transcript, muts), cuts);
            let next = 0;
            for (const s of [...steps, ...chunks.map((): Step => 'data'), { type: 'timeout' } as Step]) {
              if (m.ended) break;
              let e: ClientEvent | null;
              if (s === 'data') {
                e = next < chunks.length ? { type: 'data', bytes: chunks[next++]! } : null;
              } else if (s === 'auto') {
                // What a transport would report for the last connect/startTls.
                const p = m.pending;
                m.pending = null;
                if (p?.type === 'connect') {
                  e = p.tls ? { type: 'tlsEstablished', info: autoTls } : { type: 'connected' };
                } else if (p?.type === 'startTls') e = { type: 'tlsEstablished', info: autoTls };
                else e = next < chunks.length ? { type: 'data', bytes: chunks[next++]! } : null;
              } else if (s.type === 'tlsFailed') {
                e = {
                  type: 'tlsFailed',
                  error: Object.assign(new Error('alert'), { reason: 'bad record mac' }),
                };
              } else if (s.type === 'closed') {
                e = s.withError ? { type: 'closed', error: new Error('ECONNRESET') } : { type: 'closed' };
              } else e = s;
              if (e) await feed(hs, m, e);
            }
            expect(m.ended).toBe(true);
          },
        ),
        fcParams(runs(400)),
      );
    },
    TIMEOUT,
  );

  it(
    'an honest server damaged at one byte (flip, cut, insert, duplicate): typed failure or success',
    async () => {
      const verifier = await scramVerifier(PASSWORD, { iterations: 16 });
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('trust', 'password', 'md5', 'scram') as fc.Arbitrary<
            'trust' | 'password' | 'md5' | 'scram'
          >,
          fc.constantFrom<SslMode>('disable', 'prefer', 'require'),
          fc.nat(400),
          fc.oneof(mutationArb, fc.constant(null)),
          fc.array(fc.integer({ min: 1, max: 32 }), { maxLength: 6 }),
          async (auth, sslmode, offset, mutation, cuts) => {
            const cfg: HandshakeConfig = {
              host: 'localhost',
              user: 'alice',
              database: 'db',
              password: PASSWORD,
              sslmode,
              channelBinding: 'disable',
            };
            const hs = new ClientHandshake(cfg);
            const m = new Monitor(cfg);
            let sent = 0; // server bytes produced so far: the mutation hits offset `offset`
            let damaged = false;
            const out = (bytes: Uint8Array): Uint8Array[] => {
              let b = bytes;
              if (mutation && !damaged && offset < sent + b.length) {
                damaged = true;
                b = mutate(b, [{ ...mutation, at: offset - sent }]);
              }
              sent += bytes.length;
              return split(b, cuts);
            };
            const scram = new ScramServer({ verifier, channelBinding: null, plusAdvertised: false });
            const framer = new Framer();
            let startupSeen = false;
            let scramPhase = 0;
            const respond = async (w: Uint8Array): Promise<Uint8Array[]> => {
              if (w.length === 8 && w[4] === 0x04 && w[5] === 0xd2) return out(Uint8Array.of(0x53));
              if (!startupSeen) {
                startupSeen = true;
                switch (auth) {
                  case 'trust':
                    return out(server({ type: 'AuthenticationOk' }, ...READY));
                  case 'password':
                    return out(server({ type: 'AuthenticationCleartextPassword' }));
                  case 'md5':
                    return out(
                      server({ type: 'AuthenticationMD5Password', salt: Uint8Array.of(1, 2, 3, 4) }),
                    );
                  case 'scram':
                    return out(server({ type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256'] }));
                }
              }
              framer.push(w);
              const f = framer.next();
              if (!f) return [];
              if (auth === 'scram') {
                const msg = decodeFrontend(f, {
                  passwordMessage: scramPhase === 0 ? 'sasl-initial' : 'sasl',
                });
                scramPhase++;
                if (msg.type === 'SASLInitialResponse' && msg.data)
                  return out(
                    server({ type: 'AuthenticationSASLContinue', data: scram.handleClientFirst(msg.data) }),
                  );
                if (msg.type === 'SASLResponse') {
                  const fin = await scram.handleClientFinal(msg.data).catch(() => null);
                  return out(
                    fin
                      ? server(
                          { type: 'AuthenticationSASLFinal', data: fin },
                          { type: 'AuthenticationOk' },
                          ...READY,
                        )
                      : server({
                          type: 'ErrorResponse',
                          fields: { severity: 'FATAL', code: '28P01', message: 'x' },
                        }),
                  );
                }
                return [];
              }
              const msg = decodeFrontend(f, { passwordMessage: 'password' });
              const ok =
                msg.type === 'PasswordMessage' &&
                (auth === 'password'
                  ? msg.password === PASSWORD
                  : msg.password === md5PasswordResponse('alice', PASSWORD, Uint8Array.of(1, 2, 3, 4)));
              return out(
                ok
                  ? server({ type: 'AuthenticationOk' }, ...READY)
                  : server({
                      type: 'ErrorResponse',
                      fields: { severity: 'FATAL', code: '28P01', message: 'x' },
                    }),
              );
            };

            const queue: ClientEvent[] = [];
            const act = async (actions: ClientAction[]): Promise<void> => {
              m.check(actions);
              for (const a of actions) {
                if (a.type === 'connect') queue.push({ type: 'connected' });
                else if (a.type === 'startTls')
                  queue.push({
                    type: 'tlsEstablished',
                    info: { authorized: false, alpnProtocol: null, protocol: 'TLSv1.3' },
                  });
                else if (a.type === 'write')
                  for (const c of await respond(a.bytes)) queue.push({ type: 'data', bytes: c });
              }
            };
            await act(hs.start());
            for (let i = 0; i < 5000 && !m.ended; i++) {
              const e = queue.shift() ?? { type: 'closed' };
              let actions: ClientAction[];
              try {
                actions = await hs.handle(e);
              } catch (err) {
                throw new Error(`handle(${e.type}) threw: ${(err as Error).stack}`);
              }
              if (e.type === 'tlsEstablished') m.tlsUp = true;
              await act(actions);
            }
            expect(m.ended).toBe(true);
            if (!mutation) expect(hs.state).toBe('OK');
            expect(await hs.handle({ type: 'timeout' })).toEqual([]);
          },
        ),
        fcParams(runs(300)),
      );
    },
    TIMEOUT,
  );
});
