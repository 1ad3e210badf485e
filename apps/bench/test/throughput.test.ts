/**
 * Smoke test of the throughput bench: the quick path of secure_read and secure_write against
 * `pgconn serve` (the built CLI, over TLS with its generated CA), run in this process through the
 * same job code the bench's client processes run. Asserts byte and row counts, never timings; then
 * renders a report from the figures to check the report, ratio and target code paths.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyBytes, type ThroughputResult } from '../src/throughput/jobs.ts';
import { Lab } from '../src/throughput/lab.ts';
import { type Figure, quickConfig, type Report } from '../src/throughput/model.ts';
import { stop } from '../src/throughput/procs.ts';
import { computeRatios, evaluateTargets, toMarkdown, toSvg } from '../src/throughput/report.ts';
import { summarize } from '../src/throughput/stats.ts';
import { NO_KEY_CACHE } from '../src/throughput/suite.ts';
import { runJob } from '../src/throughput/worker.ts';

const ROWS = 300;
const WIDTH = 1000;

describe('throughput bench (quick path, pgconn serve over TLS)', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = new Lab();
    await lab.startServe();
  }, 60_000);

  afterAll(async () => {
    await lab?.close();
  });

  for (const driver of ['pgconn', 'pg', 'postgres.js'] as const) {
    it(`secure_read: ${driver} receives every byte of the COPY`, async () => {
      const r = (await runJob({
        kind: 'copy-out',
        driver,
        target: lab.target(lab.serve!.port, 'sslrequest'),
        rows: ROWS,
        rowWidth: WIDTH,
        warmupRows: 10,
        runs: 2,
      })) as ThroughputResult;
      expect(r.runs).toHaveLength(2);
      for (const run of r.runs) expect(run.bytes).toBe(copyBytes(ROWS, WIDTH));
      if (driver !== 'postgres.js') expect(r.tls?.protocol).toMatch(/^TLSv1\.[23]$/);
    }, 30_000);
  }

  it('secure_write: pgconn sends every row (the sink reports COPY n) in plaintext and over TLS', async () => {
    for (const tls of ['off', 'sslrequest'] as const) {
      const r = (await runJob({
        kind: 'copy-in',
        driver: 'pgconn',
        target: lab.target(lab.serve!.port, tls),
        table: 't',
        rows: ROWS,
        rowWidth: WIDTH,
        warmupRows: 0,
        runs: 1,
        truncate: false,
      })) as ThroughputResult;
      expect(r.runs[0]!.bytes).toBe(copyBytes(ROWS, WIDTH));
    }
  }, 30_000);

  it('a raw TLS handshake count and the report render from figures', async () => {
    const h = await runJob({
      kind: 'handshake',
      driver: 'pgconn',
      target: lab.target(lab.serve!.port, 'sslrequest'),
      count: 3,
      warmup: 0,
      runs: 1,
    });
    expect(h.kind === 'handshake' && h.runs[0]!.latenciesMs.length).toBe(3);

    const fig = (
      client: string,
      section: Figure['section'],
      v: number,
      mode: Figure['mode'] = 'tls',
    ): Figure => ({
      section,
      runtime: client.startsWith('libpq') ? 'native' : 'node',
      server: section === 'ceiling' ? 'raw socket (Node)' : 'pgconn serve',
      client,
      mode,
      unit: 'MB/s',
      value: summarize([v, v * 0.9, v * 1.1]),
      status: 'ok',
      notes: [],
    });
    const figures = [
      fig('raw read', 'ceiling', 1000),
      fig('pgconn', 'read', 950),
      fig('pg', 'read', 500),
      fig('libpq (psql)', 'read', 900),
    ];
    computeRatios(figures);
    expect(figures[1]!.ratios?.ceiling).toBeCloseTo(0.95);
    expect(figures[1]!.ratios?.pg).toBeCloseTo(1.9);
    const cfg = { ...quickConfig('/tmp'), quick: false };
    const targets = evaluateTargets(figures, cfg, ['node']);
    expect(targets.find((t) => t.id === 'read-vs-ceiling/node')?.status).toBe('PASS');
    const report: Report = {
      machine: {
        date: 'now',
        cpu: 'cpu',
        cores: 2,
        memory: '1 GiB',
        os: 'os',
        loadavgStart: [1],
        loadavgEnd: [1],
        runtimes: { Node: process.version },
        tls: 'TLSv1.3',
        libpq: 'libpq',
        postgres: {},
        pgbouncer: 'not installed',
      },
      config: cfg,
      figures,
      targets,
      codec: null,
      elapsedSeconds: 1,
      warnings: [],
    };
    expect(toMarkdown(report)).toContain('| pgconn serve | node | **pgconn** | TLS | 950 |');
    expect(toSvg(report)).toMatch(/^<svg [\s\S]*<\/svg>\n$/);
  }, 30_000);

  it('the runtime floor server completes TLS handshakes, and server targets cite its CPU and memory', async () => {
    const floor = await lab.startFloor('node');
    try {
      const h = await runJob({
        kind: 'handshake',
        driver: 'pgconn',
        target: lab.target(floor.port, 'sslrequest'),
        count: 3,
        warmup: 0,
        runs: 1,
      });
      if (h.kind !== 'handshake') throw new Error(`unexpected ${h.kind} result`);
      expect(h.runs[0]!.latenciesMs.length).toBe(3);
      expect(h.tls?.protocol).toMatch(/^TLSv1\.[23]$/);
    } finally {
      await stop(floor.child);
    }

    const server = (name: string, unit: 'conn/s' | 'KiB/conn', v: number, cpu?: number): Figure => ({
      section: 'server',
      runtime: name === 'PgBouncer 1.18.0' ? 'native' : 'node',
      server: name,
      client: 'pgbench -C',
      mode: 'tls',
      unit,
      value: summarize([v]),
      status: 'ok',
      notes: [],
      ...(cpu === undefined ? {} : { serverCpuMs: cpu }),
    });
    const figures = [
      server('pgconn serve', 'conn/s', 200, 2.5),
      server('runtime floor', 'conn/s', 500, 0.9),
      server('PgBouncer 1.18.0', 'conn/s', 400, 0.7),
      server('pgconn serve', 'KiB/conn', 70),
      server('runtime floor', 'KiB/conn', 50),
      server('PgBouncer 1.18.0', 'KiB/conn', 15),
    ];
    computeRatios(figures);
    const targets = evaluateTargets(figures, { ...quickConfig('/tmp'), quick: false }, ['node']);
    const rate = targets.find((t) => t.id === 'server-vs-pgbouncer/node');
    expect(rate?.status).toBe('MISS');
    expect(rate?.detail).toBe(
      "0.50× (200 vs 400 conn/s; server CPU per handshake 2.50 ms vs PgBouncer 0.70 ms, node's floor (its TLS server, trust, no pgconn) 0.90 ms)",
    );
    expect(targets.find((t) => t.id === 'server-memory/node')?.detail).toBe(
      "70.0 vs 15.0 KiB per connection (4.67×; node's floor (its TLS server, no pgconn) 50.0 KiB)",
    );
  }, 30_000);

  it('the client-handshake target cites pgconn without its SCRAM key cache', () => {
    const hs = (client: string, v: number): Figure => ({
      section: 'handshake',
      runtime: 'node',
      server: 'PostgreSQL 18',
      client,
      mode: 'tls',
      unit: 'conn/s',
      value: summarize([v]),
      status: 'ok',
      notes: [],
    });
    const figures = [hs('pgconn', 130), hs('pg', 100), hs('postgres.js', 20), hs(NO_KEY_CACHE, 104)];
    computeRatios(figures);
    const targets = evaluateTargets(figures, { ...quickConfig('/tmp'), quick: false }, ['node']);
    const t = targets.find((x) => x.id === 'handshake-vs-drivers/node/tls');
    expect(t?.status).toBe('PASS');
    expect(t?.detail).toBe('1.30× vs pg (130 vs 100 conn/s); pgconn, no key cache: 1.04× (104 conn/s)');
  });
});
