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
import { computeRatios, evaluateTargets, toMarkdown, toSvg } from '../src/throughput/report.ts';
import { summarize } from '../src/throughput/stats.ts';
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
});
