/**
 * `pgconn serve` under attack (issue 8 §4): 1,000 slow-loris clients that send one byte a second,
 * and random bytes from 100 clients at once. Every attacker is closed by the server within
 * --auth-timeout (plus a margin for a loaded 2-core machine), a normal TLS + SCRAM client still
 * connects and queries in under a second meanwhile, the server never crashes or prints a stack
 * trace, and it holds no socket once the attackers are gone.
 *
 * The sizes (1,000 and 100) fit CI and run as they are.
 */
import { join } from 'node:path';
import { connect } from '@pgconn/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  eventually,
  openFds,
  type RawPeer,
  rawConnect,
  type Served,
  SSL_REQUEST,
  serve,
  startupMessage,
  stopAllServers,
  tempDir,
  u32,
} from './serve-harness.ts';

const AUTH_TIMEOUT_S = 5;
const SLOW_CLIENTS = 1000;
const RANDOM_CLIENTS = 100;
const dir = tempDir('pgconn-serve-attack-');
let server: Served;

beforeAll(async () => {
  server = await serve(['--tls-dir', dir.path, '--direct-tls', '--auth-timeout', String(AUTH_TIMEOUT_S)]);
}, 30_000);

afterAll(async () => {
  await stopAllServers();
  dir.remove();
});

const serverFds = (): number => openFds(server);

/** A TLS + SCRAM-SHA-256 client with verify-full, connected and queried; returns the time it took. */
async function normalClient(): Promise<number> {
  const t0 = performance.now();
  const conn = await connect(
    `host=localhost port=${server.port} user=postgres password=postgres dbname=postgres ` +
      `sslmode=verify-full sslrootcert=${join(dir.path, 'ca.crt')} connect_timeout=10`,
    { env: {} },
  );
  try {
    expect((await conn.query('select 1')).rows).toEqual([['1']]);
    expect(conn.tls).not.toBeNull();
  } finally {
    await conn.close();
  }
  return performance.now() - t0;
}

/** What a slow-loris client sends: `prefix` at once, then `drip` one byte a second. */
const PATTERNS: { prefix: Buffer; drip: Buffer }[] = [
  { prefix: Buffer.alloc(0), drip: startupMessage({ user: 'postgres', database: 'postgres' }) },
  // After the 'S': a TLS record header and the start of a ClientHello.
  { prefix: SSL_REQUEST, drip: Buffer.from('160301020001', 'hex') },
  // Direct TLS: the ClientHello itself.
  { prefix: Buffer.alloc(0), drip: Buffer.from('16030102000100', 'hex') },
  { prefix: Buffer.alloc(0), drip: Buffer.alloc(0) },
];

interface Attacker {
  peer: RawPeer;
  bytes: Buffer;
  sent: number;
  afterReply: boolean;
}

/** Connects `n` raw clients in batches (the listen backlog is finite; SYN retries would skew times). */
async function connectMany(n: number): Promise<RawPeer[]> {
  const peers: RawPeer[] = [];
  for (let i = 0; i < n; i += 100) {
    const batch = Math.min(100, n - i);
    peers.push(...(await Promise.all(Array.from({ length: batch }, () => rawConnect(server.port)))));
  }
  return peers;
}

describe('pgconn serve under attack', () => {
  it(`${SLOW_CLIENTS} slow-loris clients (one byte a second) are each closed at --auth-timeout ${AUTH_TIMEOUT_S}; a normal client connects in < 1 s meanwhile`, async () => {
    const baseline = serverFds();
    const mark = server.log().length;
    const t0 = Date.now();
    const peers = await connectMany(SLOW_CLIENTS);
    const attackers: Attacker[] = peers.map((peer, i) => {
      const { prefix, drip } = PATTERNS[i % PATTERNS.length]!;
      if (prefix.length) peer.socket.write(prefix);
      return { peer, bytes: drip, sent: 0, afterReply: prefix.length > 0 };
    });
    const connectMs = Date.now() - t0;
    const drip = () => {
      for (const a of attackers) {
        // After an SSLRequest, only once the 'S' is in: earlier bytes are plaintext pipelined behind
        // it, which the server rightly drops at once (CVE-2021-23214).
        if (a.afterReply && a.peer.received().length === 0) continue;
        if (a.sent < a.bytes.length && !a.peer.isClosed())
          a.peer.socket.write(a.bytes.subarray(a.sent, ++a.sent));
      }
    };
    drip();
    const dripper = setInterval(drip, 1000);
    try {
      // The server holds a socket for every attacker (accepts may trail the connects a little).
      await eventually(() => serverFds() >= baseline + SLOW_CLIENTS, 10_000).catch(() => {
        throw new Error(`the server holds ${serverFds() - baseline} of ${SLOW_CLIENTS} attackers' sockets`);
      });
      // While every attacker is connected and dripping: two normal clients, a second apart.
      await new Promise((r) => setTimeout(r, 1000));
      const first = await normalClient();
      await new Promise((r) => setTimeout(r, 1000));
      const second = await normalClient();
      expect(attackers.filter((a) => a.peer.isClosed()).length).toBe(0);
      expect(first, `normal client took ${first.toFixed(0)} ms`).toBeLessThan(1000);
      expect(second, `normal client took ${second.toFixed(0)} ms`).toBeLessThan(1000);

      const lifetimes = await Promise.all(attackers.map((a) => a.peer.closed((AUTH_TIMEOUT_S + 10) * 1000)));
      const min = Math.min(...lifetimes);
      const max = Math.max(...lifetimes);
      // Closed by the timeout, not before it, and not long after (1,000 timers fire together).
      expect(min).toBeGreaterThanOrEqual(AUTH_TIMEOUT_S * 1000 - 100);
      expect(max).toBeLessThan(AUTH_TIMEOUT_S * 1000 + 4000);
      // No attacker got further than the negotiation reply ('S' / AuthenticationSASL).
      for (const a of attackers) expect(a.peer.received().length).toBeLessThanOrEqual(64);
      await eventually(
        () => (server.logSince(mark).match(/closed \(timeout\)/g) ?? []).length >= SLOW_CLIENTS,
        10_000,
      );
      await eventually(() => serverFds() <= baseline, 10_000);
      console.log(
        `slow loris: ${SLOW_CLIENTS} clients connected in ${connectMs} ms, closed after ${min}–${max} ms; ` +
          `normal TLS+SCRAM client ${first.toFixed(0)} / ${second.toFixed(0)} ms`,
      );
    } finally {
      clearInterval(dripper);
      for (const a of attackers) a.peer.socket.destroy();
    }
    expect(server.child.exitCode).toBeNull();
  }, 60_000);

  it(`random bytes from ${RANDOM_CLIENTS} clients at once: each closed, no crash, the server keeps serving`, async () => {
    const seed = Number(process.env.FC_SEED ?? (process.env.FC_RANDOM ? Date.now() % 2 ** 31 : 0x5eedc0de));
    let state = seed >>> 0;
    // mulberry32: a seeded generator, so a failure can be replayed with FC_SEED.
    const rand = (): number => {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    };
    const randomBytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
    // Random bytes alone, or behind a valid prefix so the server parses deeper before it meets them.
    const prefixes = [
      Buffer.alloc(0),
      SSL_REQUEST,
      startupMessage({ user: 'postgres', database: 'postgres' }),
      u32(8), // a startup packet of 8 bytes: the random bytes give its protocol code
      Buffer.from([0x16, 0x03, 0x01]), // the start of a direct TLS record
    ];
    const baseline = serverFds();
    const mark = server.log().length;
    const peers = await connectMany(RANDOM_CLIENTS);
    for (const [i, peer] of peers.entries()) {
      const n = 1 + Math.floor(rand() * 4096);
      peer.socket.write(Buffer.concat([prefixes[i % prefixes.length]!, randomBytes(n)]));
    }
    try {
      const lifetimes = await Promise.all(
        peers.map((p, i) =>
          p.closed((AUTH_TIMEOUT_S + 10) * 1000).catch(() => {
            throw new Error(`client ${i} (prefix ${i % prefixes.length}) was not closed; seed ${seed}`);
          }),
        ),
      );
      expect(Math.max(...lifetimes), `seed ${seed}`).toBeLessThan(AUTH_TIMEOUT_S * 1000 + 4000);
      await eventually(() => serverFds() <= baseline, 10_000);
      expect(await normalClient()).toBeLessThan(1000);
      const log = server.logSince(mark);
      expect(log, `seed ${seed}`).not.toMatch(/\n\s+at |Uncaught|Unhandled|TypeError|RangeError/);
      expect((log.match(/ closed \(/g) ?? []).length, `seed ${seed}`).toBeGreaterThanOrEqual(RANDOM_CLIENTS);
      console.log(
        `random bytes (seed ${seed}): ${RANDOM_CLIENTS} clients closed after ${Math.min(...lifetimes)}–${Math.max(...lifetimes)} ms`,
      );
    } finally {
      for (const p of peers) p.socket.destroy();
    }
    expect(server.child.exitCode).toBeNull();
  }, 60_000);
});
