/**
 * `pgconn serve` under load (issue 8 §5): idle TLS sessions held at once (memory per connection from
 * the server's VmRSS), and concurrent TLS + SCRAM-SHA-256 handshakes, all with zero errors; after
 * the clients close, the server holds no socket and the client no handle.
 *
 * CI sizes: 1,000 idle, 200 concurrent handshakes. The sizes (5,000 idle, 1,000 concurrent):
 * `LOAD_FULL=1 npx vitest run --project pgconn test/serve-load.test.ts` (the fd limit here is 20,000;
 * client and server each need one descriptor per connection).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Connection } from '@pgconn/core';
import { connect } from '@pgconn/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, openFds, type Served, serve, stopAllServers, tempDir } from './serve-harness.ts';

const FULL = process.env.LOAD_FULL === '1';
const IDLE = FULL ? 5000 : 1000;
const CONCURRENT = FULL ? 1000 : 200;

const dir = tempDir('pgconn-serve-load-');
const CA = join(dir.path, 'ca.crt');
let scram: Served;
let trust: Served;

beforeAll(async () => {
  scram = await serve(['--tls-dir', dir.path, '--tls', 'required']);
  const files = ['--tls-cert', join(dir.path, 'server.crt'), '--tls-key', join(dir.path, 'server.key')];
  trust = await serve([...files, '--tls', 'required', '--auth', 'trust']);
}, 30_000);

afterAll(async () => {
  await stopAllServers();
  dir.remove();
});

const rssOf = (s: Served): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${s.child.pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
};
const sockets = (): number =>
  process.getActiveResourcesInfo().filter((r) => r === 'TCPWrap' || r === 'TLSWrap').length;

const conninfo = (s: Served, extra = '') =>
  `host=localhost port=${s.port} user=postgres password=postgres dbname=postgres sslmode=verify-full ` +
  `sslrootcert=${CA} connect_timeout=60 ${extra}`;

/** Opens `n` connections, `parallel` at a time; every failure is collected, none is thrown away. */
async function openMany(
  s: Served,
  n: number,
  parallel: number,
): Promise<{ conns: Connection[]; errors: Error[] }> {
  const conns: Connection[] = [];
  const errors: Error[] = [];
  let next = 0;
  const lane = async () => {
    while (next < n) {
      next++;
      try {
        conns.push(await connect(conninfo(s), { env: {} }));
      } catch (e) {
        errors.push(e as Error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, lane));
  return { conns, errors };
}

describe(`pgconn serve under load (${FULL ? 'full' : 'CI'} sizes)`, () => {
  it(`holds ${IDLE} idle TLS sessions; memory per connection from the server's RSS`, async () => {
    const baseFds = openFds(trust);
    const baseSockets = sockets();
    // Warm the server (TLS context, code paths) before its baseline RSS is taken.
    const warm = await openMany(trust, 20, 20);
    await Promise.all(warm.conns.map((c) => c.close()));
    await eventually(() => openFds(trust) <= baseFds, 10_000);
    const rss0 = rssOf(trust);
    const t0 = performance.now();
    const { conns, errors } = await openMany(trust, IDLE, 50);
    const openMs = performance.now() - t0;
    try {
      expect(errors.map((e) => e.message).slice(0, 3)).toEqual([]);
      expect(conns.length).toBe(IDLE);
      await eventually(() => openFds(trust) >= baseFds + IDLE, 10_000);
      await new Promise((r) => setTimeout(r, 500));
      const perConn = (rssOf(trust) - rss0) / IDLE;
      // Every session still answers after all are open.
      const sample = [conns[0]!, conns[Math.floor(IDLE / 2)]!, conns[IDLE - 1]!];
      for (const c of sample) expect((await c.query('select 1')).rows).toEqual([['1']]);
      console.log(
        `idle: ${IDLE} TLS sessions opened in ${(openMs / 1000).toFixed(1)} s ` +
          `(${((IDLE * 1000) / openMs).toFixed(0)}/s, 50 at a time); server RSS ` +
          `${(rss0 / 2 ** 20).toFixed(0)} → ${(rssOf(trust) / 2 ** 20).toFixed(0)} MiB, ` +
          `${(perConn / 1024).toFixed(1)} KiB per idle TLS connection`,
      );
      expect(perConn).toBeGreaterThan(0);
    } finally {
      await Promise.all(conns.map((c) => c.close()));
    }
    await eventually(() => openFds(trust) <= baseFds, 15_000);
    await eventually(() => sockets() <= baseSockets, 15_000);
    expect(trust.child.exitCode).toBeNull();
  }, 600_000);

  it(`completes ${CONCURRENT} concurrent TLS + SCRAM-SHA-256 handshakes with zero errors`, async () => {
    const baseFds = openFds(scram);
    const baseSockets = sockets();
    const t0 = performance.now();
    const { conns, errors } = await openMany(scram, CONCURRENT, CONCURRENT);
    const ms = performance.now() - t0;
    try {
      expect(errors.map((e) => e.message).slice(0, 3)).toEqual([]);
      expect(conns.length).toBe(CONCURRENT);
      for (const c of conns) {
        expect(c.handshake.authMethod).toBe('SCRAM-SHA-256-PLUS');
        expect(c.tls).not.toBeNull();
      }
      console.log(
        `handshakes: ${CONCURRENT} concurrent TLS+SCRAM(-PLUS) in ${(ms / 1000).toFixed(1)} s ` +
          `(${((CONCURRENT * 1000) / ms).toFixed(0)}/s, client and server on the same 2 cores)`,
      );
    } finally {
      await Promise.all(conns.map((c) => c.close()));
    }
    await eventually(() => openFds(scram) <= baseFds, 15_000);
    await eventually(() => sockets() <= baseSockets, 15_000);
  }, 600_000);
});
