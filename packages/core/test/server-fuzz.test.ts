/**
 * Hostile input for ServerHandshake: random mixtures of valid packets, truncated packets and raw
 * bytes, split at random points and interleaved with TLS, timeout and EOF events, sequentially or
 * all at once. The machine must only ever answer with actions (never throw or reject), and once it
 * has said `close` it must say nothing more — no write can follow.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatScramVerifier, type ScramVerifier, scramVerifier } from '../src/auth/scram.ts';
import { PROTOCOL_3_0, PROTOCOL_3_2, PROTOCOL_GREASE } from '../src/codec/constants.ts';
import { encodeFrontend, type FrontendMessage } from '../src/codec/frontend.ts';
import {
  encodeCancelRequest,
  encodeGSSENCRequest,
  encodeSSLRequest,
  encodeStartupMessage,
} from '../src/codec/startup.ts';
import { Writer } from '../src/codec/writer.ts';
import type { AuthPlan } from '../src/server/auth.ts';
import { type ServerAction, type ServerEvent, ServerHandshake } from '../src/server/handshake.ts';
import { FUZZ_TIMEOUT, fcParams, fuzzRuns } from './fc.ts';

const bytesOf = (f: (w: Writer) => void): Uint8Array => {
  const w = new Writer();
  f(w);
  return w.take();
};

const fe = (m: FrontendMessage): Uint8Array => bytesOf((w) => encodeFrontend(w, m));

const concat = (parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

const startupArb = fc
  .record({
    version: fc.constantFrom(
      PROTOCOL_3_0,
      PROTOCOL_3_2,
      PROTOCOL_GREASE,
      0x0003_0001,
      0x0002_0000,
      0x0004_0000,
    ),
    user: fc.constantFrom('alice', '', 'bob'),
    extra: fc.constantFrom<Array<[string, string]>>(
      [],
      [['_pq_.test_protocol_negotiation', '']],
      [['replication', 'true']],
      [['replication', 'bogus']],
      [['application_name', 'a\u0001b']],
    ),
  })
  .map(({ version, user, extra }) =>
    bytesOf((w) =>
      encodeStartupMessage(w, {
        version,
        parameters: [...(user ? [['user', user] as [string, string]] : []), ['database', 'db'], ...extra],
      }),
    ),
  );

/** Pieces a client (or an attacker) might send, valid or not. */
const fragmentArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.constant(bytesOf(encodeSSLRequest)),
  fc.constant(bytesOf(encodeGSSENCRequest)),
  startupArb,
  fc.uint8Array({ minLength: 1, maxLength: 32 }).map((k) => bytesOf((w) => encodeCancelRequest(w, 7, k))),
  fc.string({ maxLength: 12 }).map((p) => fe({ type: 'PasswordMessage', password: p.replaceAll('\0', '') })),
  fc.constantFrom('SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS', 'BOGUS').chain((mechanism) =>
    fc
      .option(fc.constantFrom('n,,n=,r=abcdef', 'y,,n=,r=abc', 'p=tls-server-end-point,,n=,r=x', 'garbage'))
      .map((d) =>
        fe({
          type: 'SASLInitialResponse',
          mechanism,
          data: d === null ? null : new TextEncoder().encode(d),
        }),
      ),
  ),
  fc.uint8Array({ maxLength: 40 }).map((d) => fe({ type: 'SASLResponse', data: d })),
  fc.constant(fe({ type: 'Query', sql: 'select 1' })),
  fc.uint8Array({ minLength: 1, maxLength: 24 }),
  // Truncated valid packets and a ClientHello-looking start.
  startupArb.chain((s) => fc.nat(s.length - 1).map((n) => s.slice(0, n + 1))),
  fc.uint8Array({ minLength: 1, maxLength: 16 }).map((b) => Uint8Array.of(0x16, 0x03, 0x01, ...b)),
);

const eventArb: fc.Arbitrary<ServerEvent | 'data'> = fc.oneof(
  { weight: 12, arbitrary: fc.constant<'data'>('data') },
  {
    weight: 2,
    arbitrary: fc
      .record({
        alpn: fc.constantFrom('postgresql', null, 'http/1.1'),
        authorized: fc.boolean(),
        cert: fc.option(fc.uint8Array({ maxLength: 8 })),
      })
      .map(
        ({ alpn, authorized, cert }): ServerEvent => ({
          type: 'tlsEstablished',
          info: { alpnProtocol: alpn, authorized, ...(cert ? { peerCertificate: cert } : {}) },
        }),
      ),
  },
  { weight: 1, arbitrary: fc.constant<ServerEvent>({ type: 'tlsFailed', error: new Error('alert') }) },
  { weight: 1, arbitrary: fc.constant<ServerEvent>({ type: 'timeout' }) },
  { weight: 1, arbitrary: fc.constant<ServerEvent>({ type: 'closed' }) },
);

let verifier: ScramVerifier | null = null;
const sharedVerifier = async (): Promise<ScramVerifier> => {
  verifier ??= await scramVerifier('pw', { iterations: 2 });
  return verifier;
};
const planArb = fc.constantFrom<() => Promise<AuthPlan>>(
  async () => ({ method: 'trust' }),
  async () => ({ method: 'password', verify: (p) => p === 'pw' }),
  async () => ({ method: 'md5', storedVerifier: null }),
  async () => ({
    method: 'scram-sha-256',
    verifier: await sharedVerifier(),
  }),
  async () => ({ method: 'scram-sha-256', verifier: null }),
  async () => ({
    method: 'md5',
    storedVerifier: formatScramVerifier(await sharedVerifier()),
  }),
  async () => ({ method: 'cert' }),
  async () => ({ method: 'reject' }),
);

const VALID_STARTUP = bytesOf((w) =>
  encodeStartupMessage(w, {
    parameters: [
      ['user', 'alice'],
      ['database', 'db'],
    ],
  }),
);

const KNOWN = new Set(['write', 'startTls', 'cancel', 'ready', 'close']);

/** Checks the action stream as the driver would see it, in the order results arrived. */
function checkStream(batches: ServerAction[][]): void {
  let ended = false;
  for (const batch of batches) {
    for (const a of batch) {
      expect(KNOWN.has(a.type), `unknown action ${a.type}`).toBe(true);
      expect(ended, `${a.type} after the connection ended`).toBe(false);
      if (a.type === 'write') expect(a.bytes.length).toBeGreaterThan(0);
      if (a.type === 'startTls' && !a.direct) expect(a.replay.length).toBe(0);
      if (a.type === 'close' || a.type === 'ready') ended = true;
    }
  }
}

describe('ServerHandshake under hostile input', () => {
  it(
    'random packets, chunkings and events: only actions, never anything after close',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          // Often a valid StartupMessage first, so the authentication exchanges get fuzzed too.
          fc
            .tuple(fc.boolean(), fc.array(fragmentArb, { minLength: 1, maxLength: 8 }))
            .map(([valid, rest]) => (valid ? [VALID_STARTUP, ...rest] : rest)),
          fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 16 }),
          fc.array(eventArb, { minLength: 1, maxLength: 24 }),
          planArb,
          fc.record({
            tls: fc.boolean(),
            directTls: fc.boolean(),
            requireTls: fc.constantFrom(false, false, false, true),
            replication: fc.boolean(),
          }),
          fc.boolean(),
          async (fragments, cuts, events, plan, flags, concurrent) => {
            const stream = concat(fragments);
            const chunks: Uint8Array[] = [];
            let at = 0;
            for (let i = 0; at < stream.length; i++) {
              const n = cuts[i % cuts.length]!;
              chunks.push(stream.slice(at, at + n));
              at += n;
            }
            const hs = new ServerHandshake(
              {
                auth: plan,
                tls: flags.tls ? { channelBindingHash: new Uint8Array(32).fill(1) } : null,
                directTls: flags.directTls,
                requireTls: flags.requireTls,
                replication: flags.replication,
                scramIterations: 2,
                mockAuthSecret: 'fuzz',
              },
              { remoteHost: 'fuzz' },
            );
            const script: ServerEvent[] = [];
            let next = 0;
            for (const e of events) {
              if (e !== 'data') script.push(e);
              else if (next < chunks.length) script.push({ type: 'data', bytes: chunks[next++]! });
            }
            while (next < chunks.length) script.push({ type: 'data', bytes: chunks[next++]! });

            const batches: ServerAction[][] = [];
            if (concurrent) {
              // Everything at once: results are checked in the order they settle.
              await Promise.all(script.map((e) => hs.handle(e).then((r) => batches.push(r))));
            } else {
              for (const e of script) batches.push(await hs.handle(e));
            }
            checkStream(batches);
            // Whatever state it is in, one more EOF either ends it or is ignored after the end.
            const last = await hs.handle({ type: 'closed' });
            checkStream([...batches, last]);
            expect(hs.state === 'READY' || hs.state === 'CLOSED').toBe(true);
          },
        ),
        fcParams(fuzzRuns(300)),
      );
    },
    FUZZ_TIMEOUT,
  );

  it(
    'a valid client script gives the same session however it is split',
    async () => {
      const script = concat([
        bytesOf((w) =>
          encodeStartupMessage(w, {
            version: PROTOCOL_GREASE,
            parameters: [
              ['user', 'alice'],
              ['database', 'db'],
            ],
          }),
        ),
        fe({ type: 'PasswordMessage', password: 'pw' }),
        fe({ type: 'Query', sql: 'select 1' }),
      ]);
      const query = fe({ type: 'Query', sql: 'select 1' });
      await fc.assert(
        fc.asyncProperty(
          fc.uniqueArray(fc.integer({ min: 1, max: script.length - 1 }), { maxLength: 12 }),
          async (cuts) => {
            const points = [0, ...cuts.sort((a, b) => a - b), script.length];
            const hs = new ServerHandshake({
              auth: () => ({ method: 'password', verify: (p) => p === 'pw' }),
            });
            const all: ServerAction[] = [];
            for (let i = 0; i + 1 < points.length; i++) {
              all.push(...(await hs.handle({ type: 'data', bytes: script.slice(points[i], points[i + 1]) })));
            }
            const ready = all.find((a) => a.type === 'ready');
            expect(ready?.type).toBe('ready');
            if (ready?.type === 'ready') {
              expect(ready.session).toMatchObject({ user: 'alice', database: 'db', authMethod: 'password' });
              // The query may have arrived with or after the password: what came with it is kept.
              const got = ready.session.leftover;
              expect([...got]).toEqual([...query.slice(0, got.length)]);
            }
          },
        ),
        fcParams(fuzzRuns(200)),
      );
    },
    FUZZ_TIMEOUT,
  );
});
