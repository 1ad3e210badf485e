/**
 * Fault injection (issue 8, part 2): the full client handshake through the testkit's fault proxy,
 * with a cut, a stall, a bit flip or an injected byte at byte N of either direction, for N over the
 * whole handshake:
 *
 *   - pgconn's client → PostgreSQL 15, TLS + SCRAM-SHA-256 (channel_binding=disable);
 *   - pgconn's client → PostgreSQL 15, TLS + SCRAM-SHA-256-PLUS (channel_binding=require);
 *   - pgconn's client → PostgreSQL 18, direct TLS (ALPN) + SCRAM-SHA-256-PLUS;
 *   - pgconn's client → `pgconn serve` (the built CLI), TLS + SCRAM;
 *   - psql → `pgconn serve`, on a coarse stride in CI, every N with FUZZ_FULL=1 (the server side must survive and answer).
 *
 * Each case must end within connect_timeout (2 s) + a margin, in success (only where the fault is
 * harmless: after the handshake) or in a typed PgConnError; no unhandled rejection; no socket or timer
 * left once the batch is over; and no password byte in the plaintext the client sent before its TLS
 * ClientHello. The byte lengths L of each direction are measured first through a transparent proxy.
 *
 * CI mode: every byte of the first and last EDGE bytes of each direction plus an even stride between
 * (stalls, which each cost connect_timeout, on a coarser one). FUZZ_FULL=1: every N, every kind,
 * psql included.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AuthError,
  ConnectionError,
  ProtocolError,
  ServerError,
  TlsError,
  UnsupportedError,
} from '@pgconn/core';
import {
  type CertSet,
  createCertSet,
  type Fault,
  type FaultDirection,
  type FaultKind,
  type FaultProxy,
  type PgServer,
  PSQL,
  startFaultProxy,
  startTlsPostgres,
  TEST_PASSWORD,
} from '@pgconn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../src/index.ts';

const FULL = process.env.FUZZ_FULL === '1';
const CONNECT_TIMEOUT = 2;
/** connect_timeout plus scheduling slack on two busy cores. */
const LIMIT_MS = CONNECT_TIMEOUT * 1000 + 2500;
const CONCURRENCY = 8;
const KINDS: FaultKind[] = ['cut', 'stall', 'flip', 'inject'];
const DIRS: FaultDirection[] = ['c2s', 's2c'];
const SERVE_PASSWORD = 'Fault-Proxy-Pw-7';
const BIN = fileURLToPath(new URL('../../cli/dist/bin.js', import.meta.url));

const TYPED = [ConnectionError, TlsError, ProtocolError, AuthError, ServerError, UnsupportedError];

const activeCount = (): number =>
  process
    .getActiveResourcesInfo()
    .filter((r) => r === 'TCPWrap' || r === 'TLSWrap' || r === 'PipeWrap' || r === 'Timeout').length;

const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => {
  unhandled.push(e);
};

/** N values to try for one direction of length L. */
function positions(L: number, kind: FaultKind, coarse: boolean): number[] {
  // Full mode: every N (for psql, L already leaves out the tail connect_timeout does not cover).
  if (FULL) return Array.from({ length: L }, (_, i) => i);
  const edge = coarse ? 2 : kind === 'stall' ? 3 : 20;
  const inner = coarse ? 6 : kind === 'stall' ? 4 : 16;
  const set = new Set<number>();
  for (let i = 0; i < Math.min(edge, L); i++) {
    set.add(i);
    set.add(L - 1 - i);
  }
  for (let k = 1; k <= inner; k++) set.add(Math.floor((k * L) / (inner + 1)));
  return [...set].filter((n) => n >= 0 && n < L).sort((a, b) => a - b);
}

async function pool<T>(items: T[], n: number, f: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await f(items[next++]!);
    }),
  );
}

const ASCII = (s: string) => new TextEncoder().encode(s);
const indexOf = (hay: Uint8Array, needle: Uint8Array, from = 0): number => {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
};

/**
 * Offsets of the bytes a TLS 1.3 handshake does not authenticate, in one direction of a clean run:
 * the content type and legacy version of every cleartext record (handshake 0x16 and the middlebox
 * compatibility ChangeCipherSpec 0x14, whose one-byte body is not authenticated either), up to the
 * first encrypted record. The transcript hash covers handshake messages, not record headers; from
 * the first encrypted record on, the header is the AEAD's additional data. Measured: OpenSSL (Node,
 * PostgreSQL 15) completes the handshake with the CCS record's type flipped to alert, and with a
 * HelloRetryRequest's follow-up records typed 0x56 instead of 0x16.
 */
function unauthenticatedTlsBytes(bytes: Uint8Array): Set<number> {
  const out = new Set<number>();
  // The first record: after the SSLRequest (client) or the 'S' (server); at 0 with direct TLS.
  let i = indexOf(bytes, Uint8Array.of(0x16, 0x03));
  while (i >= 0 && i + 5 <= bytes.length && (bytes[i] === 0x16 || bytes[i] === 0x14)) {
    const length = (bytes[i + 3]! << 8) | bytes[i + 4]!;
    out
      .add(i)
      .add(i + 1)
      .add(i + 2);
    if (bytes[i] === 0x14) out.add(i + 5);
    i += 5 + length;
  }
  return out;
}

/** The client's plaintext before its TLS ClientHello (a handshake record: 0x16 0x03). */
function plaintextBeforeTls(bytes: Uint8Array): Uint8Array {
  const i = indexOf(bytes, Uint8Array.of(0x16, 0x03));
  return i === -1 ? bytes : bytes.subarray(0, i);
}

interface Outcome {
  ok: boolean;
  error?: unknown;
  ms: number;
  /** Bytes each direction had carried when the handshake resolved (success only). */
  atDone?: Record<FaultDirection, number>;
}

type Runner = (port: number, proxy: FaultProxy) => Promise<Outcome>;

/** Bounds a promise: a hang becomes an outcome instead of a stuck test, and the timer is cleared. */
async function bounded<T>(p: Promise<T>, ms: number): Promise<T | 'hang'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<'hang'>((r) => {
    timer = setTimeout(() => r('hang'), ms);
  });
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

const pgconnRunner =
  (conninfo: (port: number) => string): Runner =>
  async (port, proxy) => {
    const t0 = performance.now();
    try {
      const conn = await connect(conninfo(port), { env: {} });
      const ms = performance.now() - t0;
      const atDone = { ...proxy.totals };
      // close() must not hang either (a stalled Terminate is the transport's problem, bounded).
      const closed = await bounded(conn.close(), LIMIT_MS);
      if (closed === 'hang') return { ok: false, error: new Error('close() hung'), ms };
      return { ok: true, ms, atDone };
    } catch (error) {
      return { ok: false, error, ms: performance.now() - t0 };
    }
  };

interface Summary {
  target: string;
  L: Record<FaultDirection, number>;
  handshake: Record<FaultDirection, number>;
  cases: number;
  ok: number;
  /** Successes with the fault in the last 64 bytes of the handshake or after it. */
  okTail: number;
  /** Successes with a flipped byte TLS does not authenticate (`unauthenticatedTlsBytes`). */
  okRecordHeader: number;
  errors: Record<string, number>;
  maxMs: number;
  seconds: number;
}
const summaries: Summary[] = [];

/** Measures L, then runs every (direction, kind, N) case and checks the invariants. */
async function campaign(
  target: string,
  password: string,
  run: Runner,
  typed = true,
  coarse = false,
): Promise<Summary> {
  // L: one transparent run.
  const probe = await startFaultProxy({ targetPort: targetPortOf(target) });
  const base = await run(probe.port, probe);
  await probe.close();
  expect(base.error, `${target}: the clean handshake failed`).toBeUndefined();
  const clean = probe.connections[0]!;
  const L = { c2s: clean.bytes.c2s, s2c: clean.bytes.s2c };
  const unauthenticated = {
    c2s: unauthenticatedTlsBytes(clean.clientBytes),
    s2c: unauthenticatedTlsBytes(clean.serverBytes),
  };
  const handshake = base.atDone ?? L;

  const cases: Fault[] = [];
  for (const direction of DIRS)
    for (const kind of KINDS) {
      const at = new Set(positions(coarse ? L[direction] - 128 : L[direction], kind, coarse));
      // The unauthenticated header bytes are flipped in CI mode too: full mode found successes there.
      if (kind === 'flip') for (const n of unauthenticated[direction]) at.add(n);
      for (const n of [...at].sort((a, b) => a - b))
        cases.push({ direction, kind, at: n, ...(kind === 'flip' ? { bit: n % 8 } : {}) });
    }
  // Stalls last and wider: each one waits for connect_timeout.
  const quick = cases.filter((c) => c.kind !== 'stall');
  const stalls = cases.filter((c) => c.kind === 'stall');

  const summary: Summary = {
    target,
    L,
    handshake,
    cases: cases.length,
    ok: 0,
    okTail: 0,
    okRecordHeader: 0,
    errors: {},
    maxMs: 0,
    seconds: 0,
  };
  const problems: string[] = [];
  const before = activeCount();
  const t0 = performance.now();
  const one = async (fault: Fault) => {
    const proxy = await startFaultProxy({ targetPort: targetPortOf(target), fault });
    const out = await run(proxy.port, proxy);
    await proxy.close();
    const where = `${fault.kind} ${fault.direction}@${fault.at}`;
    summary.maxMs = Math.max(summary.maxMs, out.ms);
    if (out.ms > LIMIT_MS) problems.push(`${where}: took ${Math.round(out.ms)} ms`);
    if (out.ok) {
      summary.ok++;
      // Harmless only after the handshake (its last record may share a read with later bytes: a
      // 64-byte tail is allowed), or on a byte TLS does not authenticate (`unauthenticatedTlsBytes`).
      if (out.atDone) {
        if (fault.at >= handshake[fault.direction] - 64) summary.okTail++;
        else if (fault.kind === 'flip' && unauthenticated[fault.direction].has(fault.at))
          summary.okRecordHeader++;
        else
          problems.push(
            `${where}: succeeded although the handshake carried ${handshake[fault.direction]} bytes`,
          );
      }
    } else {
      const e = out.error;
      const name = e instanceof Error ? e.constructor.name : typeof e;
      summary.errors[name] = (summary.errors[name] ?? 0) + 1;
      if (typed && !TYPED.some((T) => e instanceof T))
        problems.push(`${where}: untyped ${name}: ${e instanceof Error ? e.stack : String(e)}`);
    }
    for (const c of proxy.connections) {
      if (indexOf(plaintextBeforeTls(c.clientBytes), ASCII(password)) !== -1)
        problems.push(`${where}: password in plaintext`);
    }
  };
  await pool(quick, CONCURRENCY, one);
  // Stalls mostly wait; full mode runs more at once (PostgreSQL's max_connections is 100).
  await pool(stalls, CONCURRENCY * (FULL ? 4 : 2), one);
  summary.seconds = (performance.now() - t0) / 1000;
  // Closed sockets are released on the next turns of the event loop.
  await new Promise((r) => setTimeout(r, 200));
  const after = activeCount();
  summaries.push(summary);
  console.log(`[faults] ${JSON.stringify(summary)}`);
  expect(problems.slice(0, 20)).toEqual([]);
  expect(unhandled).toEqual([]);
  expect(after, `${target}: handles before ${before}, after ${after}`).toBeLessThanOrEqual(before);
  return summary;
}

let certs: CertSet;
let pg: PgServer;
let pg18: PgServer;
let serveChild: ChildProcess | null = null;
let servePort = 0;
let tlsDir = '';
const targetPortOf = (target: string): number =>
  target.startsWith('pg18') ? pg18.port : target.startsWith('pg') ? pg.port : servePort;

function startServe(): Promise<number> {
  tlsDir = mkdtempSync(join(tmpdir(), 'pgconn-faults-'));
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [BIN, 'serve', '--port', '0', '--tls-dir', tlsDir, '--auth-timeout', '5', '--password', SERVE_PASSWORD],
      { env: { PATH: process.env.PATH ?? '', HOME: tlsDir }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    serveChild = child;
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.stderr?.resume();
    child.once('exit', (code) => reject(new Error(`pgconn serve exited (${code}): ${out}`)));
  });
}

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  certs = await createCertSet();
  [pg, pg18, servePort] = await Promise.all([
    startTlsPostgres(15, certs),
    startTlsPostgres(18, certs),
    startServe(),
  ]);
}, 60_000);

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  if (serveChild && serveChild.exitCode === null) {
    const exited = new Promise((r) => serveChild?.once('exit', r));
    serveChild.kill('SIGTERM');
    await exited;
  }
  if (tlsDir) rmSync(tlsDir, { recursive: true, force: true });
  await Promise.all([pg?.stop(), pg18?.stop()]);
  await certs?.remove();
  if (summaries.length) console.log(`[faults] summary ${JSON.stringify(summaries)}`);
});

const TIMEOUT = FULL ? 4 * 3600_000 : 120_000;
const pgInfo = (cb: string) => (port: number) =>
  `host=127.0.0.1 port=${port} user=scramuser password=${TEST_PASSWORD} dbname=postgres sslmode=require channel_binding=${cb} connect_timeout=${CONNECT_TIMEOUT}`;

describe('fault injection at every byte of the handshake', () => {
  it(
    'pgconn → PostgreSQL 15, TLS + SCRAM-SHA-256 (channel_binding=disable)',
    async () => {
      await campaign('pg-scram', TEST_PASSWORD, pgconnRunner(pgInfo('disable')));
    },
    TIMEOUT,
  );

  it(
    'pgconn → PostgreSQL 15, TLS + SCRAM-SHA-256-PLUS (channel_binding=require)',
    async () => {
      await campaign('pg-scram-plus', TEST_PASSWORD, pgconnRunner(pgInfo('require')));
    },
    TIMEOUT,
  );

  it(
    'pgconn → PostgreSQL 18, direct TLS + SCRAM-SHA-256-PLUS (channel_binding=require)',
    async () => {
      const info = (port: number) => `${pgInfo('require')(port)} sslnegotiation=direct`;
      await campaign('pg18-direct-plus', TEST_PASSWORD, pgconnRunner(info));
    },
    TIMEOUT,
  );

  it(
    'pgconn → pgconn serve, TLS + SCRAM',
    async () => {
      await campaign(
        'serve-pgconn',
        SERVE_PASSWORD,
        pgconnRunner(
          (port) =>
            `host=127.0.0.1 port=${port} user=postgres password=${SERVE_PASSWORD} dbname=postgres sslmode=require connect_timeout=${CONNECT_TIMEOUT}`,
        ),
      );
    },
    TIMEOUT,
  );

  it(
    `psql → pgconn serve${FULL ? '' : ' (coarse)'}: psql exits 0 or 2 in time, the server keeps serving`,
    async () => {
      const runPsql: Runner = (port) =>
        new Promise((resolve) => {
          const t0 = performance.now();
          const child = spawn(
            PSQL,
            [
              '-X',
              '-w',
              '-At',
              '-c',
              'select 1',
              '-d',
              `host=127.0.0.1 port=${port} user=postgres dbname=postgres sslmode=require connect_timeout=${CONNECT_TIMEOUT}`,
            ],
            { env: { PATH: '/usr/bin:/bin', HOME: tlsDir, PGPASSWORD: SERVE_PASSWORD }, stdio: 'ignore' },
          );
          const kill = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS + 5000);
          child.once('exit', (code, signal) => {
            clearTimeout(kill);
            const ms = performance.now() - t0;
            if (code === 0) resolve({ ok: true, ms });
            else resolve({ ok: false, ms, error: new Error(`psql exit ${code ?? signal}`) });
          });
        });
      const s = await campaign('serve-psql', SERVE_PASSWORD, runPsql, false, true);
      // psql reports a failed connection with exit status 2, never a crash.
      expect(Object.keys(s.errors).every((k) => k === 'Error')).toBe(true);
      // The server survived all of it.
      const conn = await connect(
        `host=127.0.0.1 port=${servePort} user=postgres password=${SERVE_PASSWORD} sslmode=require connect_timeout=${CONNECT_TIMEOUT}`,
        { env: {} },
      );
      await conn.close();
    },
    TIMEOUT,
  );
});
