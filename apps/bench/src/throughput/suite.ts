/**
 * The measurements: each section turns jobs (run by a client process of the runtime under test) and
 * native tools (psql, pgbench) into Figures. Nothing here renders; report.ts does.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { PgServer, PgVersion } from '@pgconn/testkit';
import {
  copyBytes,
  type Driver,
  type HandshakeResult,
  type Job,
  type JobResult,
  type PgTarget,
  type Runtime,
  type SlowReadResult,
  type ThroughputResult,
} from './jobs.ts';
import { BENCH_PASSWORD, BENCH_USER, isUnavailable, type Lab, TRUST_USER, type Unavailable } from './lab.ts';
import { type BenchConfig, type Figure, type Mode, warmupOf } from './model.ts';
import { cpuSecondsOf, run, sleep, stop, track, waitForLine } from './procs.ts';
import { mbps, percentile, summarize } from './stats.ts';

/* ---------------------------------------------------------------------------------------------- */
/* Runtimes and client processes                                                                  */
/* ---------------------------------------------------------------------------------------------- */

export interface RuntimeInfo {
  id: Runtime;
  available: boolean;
  version: string;
  reason?: string;
  command: string[];
}

/** Which runtimes can run pgconn here: the binary, and the transport package exporting its class. */
export async function detectRuntimes(root: string, wanted: readonly Runtime[]): Promise<RuntimeInfo[]> {
  const out: RuntimeInfo[] = [];
  for (const id of wanted) {
    if (id === 'node') {
      out.push({ id, available: true, version: process.version, command: [process.execPath] });
      continue;
    }
    const bin = join(root, 'node_modules', '.bin', id);
    const command = id === 'bun' ? [bin] : [bin, 'run', '-A'];
    if (!existsSync(bin)) {
      out.push({ id, available: false, version: '', reason: `${id} binary not found (${bin})`, command });
      continue;
    }
    const version = (await run(bin, ['--version'], { cwd: root, timeoutMs: 20_000 })).stdout
      .split('\n')[0]!
      .trim();
    const pkg = `@pgconn/transport-${id}`;
    const cls = id === 'bun' ? 'BunTransport' : 'DenoTransport';
    const probe = `import('${pkg}').then((m) => console.log(typeof m.${cls}), (e) => console.log('error ' + e.message))`;
    const r = await run(bin, id === 'bun' ? ['-e', probe] : ['eval', probe], {
      cwd: root,
      timeoutMs: 30_000,
    });
    const answer = r.stdout.trim();
    if (answer === 'function') out.push({ id, available: true, version, command });
    else {
      const why = answer.startsWith('error') ? answer.slice(6) : `${pkg} exports no ${cls}`;
      out.push({ id, available: false, version, reason: `runtime not available: ${why}`, command });
    }
  }
  return out;
}

export type Executor = (rt: RuntimeInfo, job: Job, timeoutMs: number) => Promise<JobResult>;

/** Runs a job in a fresh client process of the runtime (dist/throughput-worker.js). */
export function processExecutor(lab: Lab): Executor {
  const worker = join(lab.distDir, 'throughput-worker.js');
  return async (rt, job, timeoutMs) => {
    const [cmd, ...pre] = rt.command;
    const flags = rt.id === 'node' && job.kind === 'slow-read' ? ['--expose-gc'] : [];
    // BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=DIR" profiles every Node worker (NODE_OPTIONS refuses --cpu-prof).
    if (rt.id === 'node' && process.env.BENCH_NODE_FLAGS)
      flags.push(...process.env.BENCH_NODE_FLAGS.split(/\s+/));
    const r = await run(cmd!, [...pre, ...flags, worker, JSON.stringify(job)], { cwd: lab.root, timeoutMs });
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    if (r.code !== 0 || !line) {
      const err = r.stderr.trim().split('\n').filter(Boolean);
      const msg = err.find((l) => /Error|error|failed/.test(l)) ?? err[0] ?? `exit ${r.code ?? r.signal}`;
      throw new Error(msg.trim());
    }
    return JSON.parse(line.slice(7)) as JobResult;
  };
}

/* ---------------------------------------------------------------------------------------------- */
/* Helpers                                                                                        */
/* ---------------------------------------------------------------------------------------------- */

export interface Ctx {
  lab: Lab;
  cfg: BenchConfig;
  exec: Executor;
  runtimes: RuntimeInfo[];
  figures: Figure[];
  log: (line: string) => void;
  warn: (line: string) => void;
}

const tlsOfMode = (m: Mode): PgTarget['tls'] =>
  m === 'plain' ? 'off' : m === 'tls' ? 'sslrequest' : 'direct';

/** Per-process time limit: 30 MB/s worst case plus a minute, never less than the quick bound. */
function timeout(cfg: BenchConfig, bytes = 0): number {
  return Math.max(cfg.quick ? 45_000 : 120_000, 60_000 + (1.25 * bytes) / 30_000);
}

type FigureBase = Omit<Figure, 'value' | 'status' | 'notes'>;

function unavailableFigure(base: FigureBase, reason: string): Figure {
  return { ...base, value: null, status: 'not available', reason, notes: [] };
}

/** What one round of one cell produced. */
interface Sample {
  value: number;
  cpuSecPerGB?: number;
  latencies?: number[];
  tls?: Figure['tls'];
  notes?: string[];
  connMs?: number;
  /** The server process's own CPU per handshake (server section). */
  serverCpuMs?: number;
}

/** One figure to measure: `once(round)` takes one timed sample (after its own short warm-up). */
interface Cell {
  base: FigureBase;
  unavailable?: string;
  once?: (round: number) => Promise<Sample>;
  /** After all rounds: turn the samples into the figure. */
  finish?: (fig: Figure, samples: Sample[]) => void;
}

const labelOf = (b: FigureBase) => `${b.section} · ${b.runtime} · ${b.server} · ${b.client} · ${b.mode}`;

/**
 * Runs the cells' samples interleaved: round r runs every cell once, starting at cell r (rotating),
 * so the load of a shared machine, which drifts over minutes, falls on every cell alike instead of
 * on whichever ran its five runs in a row at the worst moment.
 */
async function interleave(ctx: Ctx, cells: Cell[], rounds = ctx.cfg.runs): Promise<void> {
  const live = cells.filter((c) => !c.unavailable && c.once);
  const samples = new Map<Cell, Sample[]>(live.map((c) => [c, []]));
  const failed = new Map<Cell, string>();
  for (let r = 0; r < rounds; r++) {
    const order = live.map((_, i) => live[(i + r) % live.length]!);
    for (const c of order) {
      if (failed.has(c)) continue;
      const t0 = performance.now();
      try {
        const s = await c.once!(r);
        samples.get(c)!.push(s);
        ctx.log(
          `${labelOf(c.base)} [${r + 1}/${rounds}]: ${s.value.toFixed(1)} ${c.base.unit} (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
        );
      } catch (e) {
        const reason = ((e as Error).message ?? String(e)).split('\n')[0]!;
        failed.set(c, reason);
        ctx.warn(`${labelOf(c.base)}: FAILED: ${reason}`);
      }
    }
  }
  for (const c of cells) {
    if (c.unavailable || !c.once) {
      ctx.figures.push(unavailableFigure(c.base, c.unavailable ?? 'not available'));
      continue;
    }
    const reason = failed.get(c);
    if (reason !== undefined) {
      ctx.figures.push({ ...c.base, value: null, status: 'failed', reason, notes: [] });
      continue;
    }
    const ss = samples.get(c)!;
    const cpu = ss.map((s) => s.cpuSecPerGB).filter((x): x is number => x !== undefined);
    const fig: Figure = {
      ...c.base,
      value: summarize(ss.map((s) => s.value)),
      status: 'ok',
      notes: [...new Set(ss.flatMap((s) => s.notes ?? []))],
      tls: ss.find((s) => s.tls)?.tls ?? null,
      samples: ss.map((s) => s.value),
    };
    if (cpu.length) fig.cpu = summarize(cpu);
    c.finish?.(fig, ss);
    ctx.figures.push(fig);
  }
}

/** Keeps the notes of the round nearest the median: per-round detail (RSS before/after) differs by round. */
function medianNotes(fig: Figure, samples: Sample[]): void {
  const m = fig.value?.median;
  if (m === undefined || samples.length < 2) return;
  const near = samples.reduce((a, b) => (Math.abs(b.value - m) < Math.abs(a.value - m) ? b : a));
  const [first, ...rest] = near.notes ?? [];
  fig.notes = first === undefined ? [] : [`median round: ${first}`, ...rest];
}

/** The sample of a one-run throughput job. */
function throughputSample(r: JobResult): Sample {
  const t = r as ThroughputResult;
  const run = t.runs[0]!;
  const s: Sample = { value: mbps(run.bytes, run.ms), tls: t.tls, notes: t.notes };
  if (run.cpuMs !== undefined) s.cpuSecPerGB = run.cpuMs / 1000 / (run.bytes / 1e9);
  return s;
}

function pgServers(ctx: Ctx): { name: string; server: PgServer | Unavailable; version: PgVersion }[] {
  return ctx.cfg.pgVersions.map((v) => ({
    name: `PostgreSQL ${v}`,
    server: ctx.lab.pg.get(v) ?? { unavailable: `PostgreSQL ${v} not started` },
    version: v,
  }));
}

/* ---------------------------------------------------------------------------------------------- */
/* libpq through psql and pgbench                                                                  */
/* ---------------------------------------------------------------------------------------------- */

export const PSQL = '/usr/lib/postgresql/15/bin/psql';
export const PGBENCH = '/usr/lib/postgresql/15/bin/pgbench';

/** libpq 18 (the PostgreSQL 18 package's) for direct TLS; else Debian's own libpq. */
async function libpq18Dir(): Promise<string | null> {
  try {
    const { pgInstall } = await import('@pgconn/testkit');
    const lib = pgInstall(18).lib;
    return existsSync(join(lib, 'libpq.so.5')) ? lib : null;
  } catch {
    return null;
  }
}

export function libpqEnv(lab: Lab, t: PgTarget, lib18: string | null): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: lab.dir,
    PGHOST: t.host,
    PGPORT: String(t.port),
    PGUSER: t.user,
    PGDATABASE: t.database,
    PGGSSENCMODE: 'disable',
    PGSSLMODE: t.tls === 'off' ? 'disable' : 'verify-full',
    PGAPPNAME: 'bench',
  };
  if (t.password) env.PGPASSWORD = t.password;
  if (t.ca) env.PGSSLROOTCERT = t.ca;
  if (t.tls === 'direct') env.PGSSLNEGOTIATION = 'direct';
  if (lib18) env.LD_LIBRARY_PATH = lib18;
  return env;
}

/** psql's `\timing` reports how long each command took, `\copy` included; we read that number. */
async function psqlTimed(lab: Lab, t: PgTarget, command: string, lib18: string | null, timeoutMs: number) {
  const r = await run(PSQL, ['-X', '-v', 'ON_ERROR_STOP=1', '-c', '\\timing on', '-c', command], {
    env: libpqEnv(lab, t, lib18),
    timeoutMs,
  });
  if (r.code !== 0) throw new Error(`psql: ${r.stderr.trim().split('\n')[0] ?? `exit ${r.code}`}`);
  const m = /Time: ([\d.]+) ms/.exec(r.stdout);
  return { ms: m ? Number(m[1]) : null, wallMs: r.ms, stdout: r.stdout };
}

/** A COPY text file of `rows` rows (written once per size, in the lab directory). */
function rowsFile(lab: Lab, rows: number, width: number): string {
  const path = join(lab.dir, `rows-${rows}x${width}.txt`);
  if (existsSync(path)) return path;
  const line = width + 1;
  const per = Math.max(1, Math.floor((64 * 1024) / line));
  const chunk = Buffer.alloc(per * line, 0x78);
  for (let i = line - 1; i < chunk.length; i += line) chunk[i] = 0x0a;
  const fd = openSync(path, 'w', 0o644);
  try {
    let left = rows;
    for (; left >= per; left -= per) writeSync(fd, chunk);
    if (left > 0) writeSync(fd, chunk, 0, left * line);
  } finally {
    closeSync(fd);
  }
  return path;
}

/** One psql `\copy` of `rows` rows (after a short warm-up one in full mode), timed by psql. */
async function libpqCopyOnce(
  ctx: Ctx,
  dir: 'read' | 'write',
  t: PgTarget,
  rows: number,
  pg: PgServer | null,
): Promise<Sample> {
  const { lab, cfg } = ctx;
  const once = async (n: number) => {
    let cmd: string;
    if (dir === 'read')
      cmd = `\\copy (SELECT repeat('x', ${cfg.rowWidth}) FROM generate_series(1, ${n})) to '/dev/null'`;
    else cmd = `\\copy t from '${rowsFile(lab, n, cfg.rowWidth)}'`;
    if (dir === 'write' && pg) await pg.sql('TRUNCATE t');
    const r = await psqlTimed(lab, t, cmd, null, timeout(cfg, copyBytes(n, cfg.rowWidth)));
    if (r.ms === null) throw new Error('psql printed no timing for \\copy');
    // psql prints the command tag: the row count the server (or psql, for \copy to) reports.
    if (!new RegExp(`^COPY ${n}$`, 'm').test(r.stdout))
      throw new Error(`psql: expected COPY ${n}, got ${r.stdout.trim().replace(/\n/g, ' / ').slice(0, 120)}`);
    return r.ms;
  };
  if (cfg.warmup) await once(Math.max(1, warmupOf(rows)));
  const ms = await once(rows);
  if (dir === 'write' && pg) await pg.sql('TRUNCATE t');
  return {
    value: mbps(copyBytes(rows, cfg.rowWidth), ms),
    notes: [
      'psql 15 `\\copy`, timed by psql `\\timing` (connection set-up excluded, like the other clients)',
    ],
  };
}

/* ---------------------------------------------------------------------------------------------- */
/* 3. Ceiling                                                                                      */
/* ---------------------------------------------------------------------------------------------- */

/** The raw socket ceiling of every runtime for one direction and mode (one cell per runtime). */
function ceilingCells(ctx: Ctx, direction: 'read' | 'write', tls: boolean): Cell[] {
  const { lab, cfg } = ctx;
  const raw = lab.raw;
  const cells: Cell[] = [];
  for (const rt of ctx.runtimes) {
    const base: FigureBase = {
      section: 'ceiling',
      runtime: rt.id,
      server: 'raw socket (Node)',
      client: `raw ${direction}`,
      mode: tls ? 'tls' : 'plain',
      unit: 'MB/s',
    };
    if (!rt.available) cells.push({ base, unavailable: rt.reason ?? 'runtime not available' });
    else if (!raw) cells.push({ base, unavailable: 'raw socket server not started' });
    else
      cells.push({
        base,
        once: async () =>
          throughputSample(
            await ctx.exec(
              rt,
              {
                kind: 'raw',
                direction,
                host: '127.0.0.1',
                port: tls ? raw.tlsPort : raw.plainPort,
                tls,
                ca: tls ? lab.certs.ca : null,
                bytes: cfg.rawBytes,
                chunk: cfg.chunk,
                warmupBytes: cfg.warmup ? warmupOf(cfg.rawBytes) : 0,
                runs: 1,
              },
              timeout(cfg, cfg.rawBytes),
            ),
          ),
      });
  }
  return cells;
}

/**
 * The ceiling of the directions no COPY section runs: a direction whose COPY section runs measures
 * its ceiling inside the `pgconn serve` group (see copySection), in the same rounds as the rows
 * divided by it.
 */
export async function ceilingSection(ctx: Ctx, directions: readonly ('read' | 'write')[]): Promise<void> {
  const cells: Cell[] = [];
  for (const direction of directions)
    for (const tls of [false, true]) cells.push(...ceilingCells(ctx, direction, tls));
  if (cells.length) await interleave(ctx, cells);
}

/* ---------------------------------------------------------------------------------------------- */
/* 1, 2, 4. COPY read and write: pgconn, its peers and libpq                                       */
/* ---------------------------------------------------------------------------------------------- */

const DRIVERS: readonly Driver[] = ['pgconn', 'pg', 'postgres.js'];
/** The client label of pgconn handshakes with `scramKeyCache: null`. */
export const NO_KEY_CACHE = 'pgconn, no key cache';

/**
 * `withCeiling`: the raw socket ceiling of this direction joins the `pgconn serve` group of each
 * mode, so "× ceiling" of the rows that come nearest it (our own server, not PostgreSQL-bound) is a
 * ratio of figures taken in the same rounds, not minutes apart on a machine whose load drifts.
 */
export async function copySection(ctx: Ctx, dir: 'read' | 'write', withCeiling = false): Promise<void> {
  const { lab, cfg } = ctx;
  const rows = dir === 'read' ? cfg.readRows : cfg.writeRows;
  const bytes = copyBytes(rows, cfg.rowWidth);
  const servers: { name: string; port: number | null; pg: PgServer | null; reason?: string }[] = [];
  for (const s of pgServers(ctx)) {
    if (isUnavailable(s.server))
      servers.push({ name: s.name, port: null, pg: null, reason: s.server.unavailable });
    else servers.push({ name: s.name, port: s.server.port, pg: s.server });
  }
  servers.push(
    lab.serve
      ? { name: 'pgconn serve', port: lab.serve.port, pg: null }
      : { name: 'pgconn serve', port: null, pg: null, reason: 'pgconn serve not started' },
  );

  // One interleaved group per server and mode: the rows that are compared with each other.
  for (const s of servers) {
    for (const mode of ['plain', 'tls'] as const) {
      const cells: Cell[] = [];
      for (const rt of ctx.runtimes) {
        for (const driver of DRIVERS) {
          const peer = driver !== 'pgconn';
          if (peer && !cfg.peerRuntimes.includes(rt.id)) continue;
          if (peer && mode === 'plain' && !cfg.peersPlain) continue;
          const base: FigureBase = {
            section: dir,
            runtime: rt.id,
            server: s.name,
            client: driver,
            mode,
            unit: 'MB/s',
          };
          if (!rt.available) {
            cells.push({ base, unavailable: rt.reason ?? 'runtime not available' });
            continue;
          }
          if (s.port === null) {
            cells.push({ base, unavailable: s.reason ?? 'server not available' });
            continue;
          }
          const target = lab.target(s.port, tlsOfMode(mode));
          const warmupRows = cfg.warmup ? warmupOf(rows) : 0;
          const job: Job =
            dir === 'read'
              ? { kind: 'copy-out', driver, target, rows, rowWidth: cfg.rowWidth, warmupRows, runs: 1 }
              : {
                  kind: 'copy-in',
                  driver,
                  target,
                  table: 't',
                  rows,
                  rowWidth: cfg.rowWidth,
                  warmupRows,
                  runs: 1,
                  truncate: s.pg !== null,
                };
          cells.push({
            base,
            once: async () => throughputSample(await ctx.exec(rt, job, timeout(cfg, bytes))),
          });
        }
      }
      if (mode === 'tls' || cfg.peersPlain) {
        const base: FigureBase = {
          section: dir,
          runtime: 'native',
          server: s.name,
          client: 'libpq (psql)',
          mode,
          unit: 'MB/s',
        };
        if (!existsSync(PSQL)) cells.push({ base, unavailable: `psql not found at ${PSQL}` });
        else if (s.port === null) cells.push({ base, unavailable: s.reason ?? 'server not available' });
        else {
          const target = lab.target(s.port, tlsOfMode(mode));
          cells.push({ base, once: () => libpqCopyOnce(ctx, dir, target, rows, s.pg) });
        }
      }
      if (withCeiling && s.name === 'pgconn serve') cells.push(...ceilingCells(ctx, dir, mode === 'tls'));
      await interleave(ctx, cells);
    }
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* 5. Client handshakes                                                                            */
/* ---------------------------------------------------------------------------------------------- */

const HANDSHAKE_MODES: readonly { mode: Mode; label: string }[] = [
  { mode: 'plain', label: 'plaintext + trust' },
  { mode: 'tls', label: 'TLS + SCRAM (SSLRequest)' },
  { mode: 'tls-direct', label: 'TLS + SCRAM (direct)' },
];

export const handshakeLabel = (m: Mode): string => HANDSHAKE_MODES.find((h) => h.mode === m)!.label;

function handshakeTarget(lab: Lab, port: number, mode: Mode): PgTarget {
  return mode === 'plain' ? lab.target(port, 'off', TRUST_USER) : lab.target(port, tlsOfMode(mode));
}

/** Latency percentiles pooled over every round's connections. */
function latencyFinish(fig: Figure, ss: Sample[]): void {
  const lat = ss.flatMap((s) => s.latencies ?? []);
  if (lat.length)
    fig.latency = {
      p50: percentile(lat, 50),
      p99: percentile(lat, 99),
      mean: lat.reduce((a, b) => a + b, 0) / lat.length,
    };
  const conn = ss.map((s) => s.connMs).filter((x): x is number => x !== undefined);
  if (conn.length)
    fig.latency = { p50: Number.NaN, p99: Number.NaN, mean: conn.reduce((a, b) => a + b, 0) / conn.length };
}

/** pgbench -C: every transaction opens a connection; with a meta-command-only script, nothing else. */
async function pgbenchHandshakes(
  ctx: Ctx,
  t: PgTarget,
  clients: number,
  perClient: number,
  lib18: string | null,
): Promise<{ connPerSec: number; connMs: number | null }> {
  const script = join(ctx.lab.dir, 'connect-only.sql');
  if (!existsSync(script)) {
    const fd = openSync(script, 'w', 0o644);
    writeSync(fd, '\\set x 1\n');
    closeSync(fd);
  }
  const args = [
    '-n',
    '-C',
    '-f',
    script,
    '-c',
    String(clients),
    '-j',
    String(Math.min(clients, 2)),
    '-t',
    String(perClient),
  ];
  const r = await run(PGBENCH, args, { env: libpqEnv(ctx.lab, t, lib18), timeoutMs: timeout(ctx.cfg) });
  const tps =
    /tps = ([\d.]+) \(including reconnection times\)/.exec(r.stdout) ?? /tps = ([\d.]+)/.exec(r.stdout);
  const failed = /number of failed transactions: (\d+)/.exec(r.stdout);
  if (r.code !== 0 || !tps)
    throw new Error(`pgbench: ${(r.stderr || r.stdout).trim().split('\n').slice(-1)[0]}`);
  if (failed && Number(failed[1]) > 0) throw new Error(`pgbench: ${failed[1]} failed transactions`);
  const done = /number of transactions actually processed: (\d+)/.exec(r.stdout);
  if (done && Number(done[1]) !== clients * perClient)
    throw new Error(`pgbench processed ${done[1]} of ${clients * perClient} connections`);
  const conn = /average connection time = ([\d.]+) ms/.exec(r.stdout);
  return { connPerSec: Number(tps[1]), connMs: conn ? Number(conn[1]) : null };
}

/** `cfg.handshakes` sequential connect → ReadyForQuery → close cycles of `driver` in a `rt` process. */
function clientHandshakeCell(
  ctx: Ctx,
  rt: RuntimeInfo,
  driver: Driver,
  target: PgTarget,
  base: FigureBase,
  noKeyCache = false,
): Cell {
  const { cfg } = ctx;
  return {
    base,
    finish: latencyFinish,
    once: async () => {
      const job: Job = {
        kind: 'handshake',
        driver,
        target,
        count: cfg.handshakes,
        warmup: cfg.handshakeWarmup,
        runs: 1,
        ...(noKeyCache ? { noKeyCache } : {}),
      };
      const r = (await ctx.exec(rt, job, timeout(cfg))) as HandshakeResult;
      const run0 = r.runs[0]!;
      return { value: (cfg.handshakes * 1000) / run0.ms, latencies: run0.latenciesMs, tls: r.tls };
    },
  };
}

/** The same cycles by libpq: `pgbench -C` with one client. */
function pgbenchHandshakeCell(ctx: Ctx, target: PgTarget, base: FigureBase, lib18: string | null): Cell {
  const { cfg } = ctx;
  return {
    base,
    finish: latencyFinish,
    once: async () => {
      if (cfg.handshakeWarmup > 0) await pgbenchHandshakes(ctx, target, 1, cfg.handshakeWarmup, lib18);
      const r = await pgbenchHandshakes(ctx, target, 1, cfg.handshakes, lib18);
      const s: Sample = {
        value: r.connPerSec,
        notes: [
          'pgbench reports the mean connection time only (no p50/p99)',
          lib18 ? 'libpq 18' : 'system libpq',
        ],
      };
      if (r.connMs !== null) s.connMs = r.connMs;
      return s;
    },
  };
}

export async function handshakeSection(ctx: Ctx): Promise<void> {
  const { lab, cfg } = ctx;
  const version: PgVersion = cfg.pgVersions.includes(18) ? 18 : cfg.pgVersions[0]!;
  const pg = lab.pg.get(version);
  const server = `PostgreSQL ${version}`;
  const lib18 = await libpq18Dir();
  for (const { mode } of HANDSHAKE_MODES) {
    const cells: Cell[] = [];
    for (const rt of ctx.runtimes) {
      for (const driver of DRIVERS) {
        const peer = driver !== 'pgconn';
        if (peer && !cfg.peerRuntimes.includes(rt.id)) continue;
        const base: FigureBase = {
          section: 'handshake',
          runtime: rt.id,
          server,
          client: driver,
          mode,
          unit: 'conn/s',
        };
        if (!rt.available) cells.push({ base, unavailable: rt.reason ?? 'runtime not available' });
        else if (!pg || isUnavailable(pg))
          cells.push({ base, unavailable: pg ? pg.unavailable : `${server} not started` });
        else if (mode === 'tls-direct' && version < 17)
          cells.push({ base, unavailable: 'direct TLS needs PostgreSQL 17+' });
        else if (mode === 'tls-direct' && peer)
          cells.push({ base, unavailable: `${driver} has no direct TLS (sslnegotiation=direct)` });
        else {
          const target = handshakeTarget(lab, pg.port, mode);
          cells.push(clientHandshakeCell(ctx, rt, driver, target, base));
          // pgconn keeps SCRAM keys between connections (RFC 5802 §5.1); pg, postgres.js and libpq
          // derive them every time. This row shows what the cache is worth: pgconn deriving them too.
          if (driver === 'pgconn' && mode !== 'plain') {
            const bare = { ...base, client: NO_KEY_CACHE };
            cells.push(clientHandshakeCell(ctx, rt, driver, target, bare, true));
          }
        }
      }
    }
    // libpq: pgbench -C, one client, libpq 18 (direct TLS needs it; the same library for every mode).
    const base: FigureBase = {
      section: 'handshake',
      runtime: 'native',
      server,
      client: 'libpq (pgbench -C)',
      mode,
      unit: 'conn/s',
    };
    if (!existsSync(PGBENCH)) cells.push({ base, unavailable: `pgbench not found at ${PGBENCH}` });
    else if (!pg || isUnavailable(pg)) cells.push({ base, unavailable: `${server} not available` });
    else if (mode === 'tls-direct' && !lib18)
      cells.push({ base, unavailable: 'libpq 18 not found (direct TLS needs libpq 17+)' });
    else cells.push(pgbenchHandshakeCell(ctx, handshakeTarget(lab, pg.port, mode), base, lib18));
    await interleave(ctx, cells);
  }
  await linkHandshakes(ctx, version, lib18);
}

/** One-way delay of the link on which direct TLS and SSLRequest are compared (Node timers: whole ms). */
export const LINK_DELAY_MS = 1;

/**
 * Direct TLS saves the SSLRequest round trip, tens of microseconds on bare loopback (inside a
 * handshake's run-to-run spread):
 * compare the two over a link with a round-trip time, through the delay proxy.
 */
async function linkHandshakes(ctx: Ctx, version: PgVersion, lib18: string | null): Promise<void> {
  const { lab } = ctx;
  const pg = lab.pg.get(version);
  const server = `PostgreSQL ${version}, ${LINK_DELAY_MS * 2} ms RTT link`;
  const cells: Cell[] = [];
  const modes: Mode[] = ['tls', 'tls-direct'];
  const skip = (base: FigureBase, why: string) => cells.push({ base, unavailable: why });
  let link: { port: number; child: ChildProcess } | null = null;
  if (pg && !isUnavailable(pg) && version >= 17) link = await lab.startDelayProxy(pg.port, LINK_DELAY_MS);
  try {
    for (const mode of modes) {
      for (const rt of ctx.runtimes) {
        const base: FigureBase = {
          section: 'handshake-link',
          runtime: rt.id,
          server,
          client: 'pgconn',
          mode,
          unit: 'conn/s',
        };
        if (!rt.available) skip(base, rt.reason ?? 'runtime not available');
        else if (!link) skip(base, `direct TLS needs PostgreSQL 17+ (${server} not available)`);
        else cells.push(clientHandshakeCell(ctx, rt, 'pgconn', handshakeTarget(lab, link.port, mode), base));
      }
      const base: FigureBase = {
        section: 'handshake-link',
        runtime: 'native',
        server,
        client: 'libpq (pgbench -C)',
        mode,
        unit: 'conn/s',
      };
      if (!existsSync(PGBENCH)) skip(base, `pgbench not found at ${PGBENCH}`);
      else if (!link) skip(base, `${server} not available`);
      else if (!lib18) skip(base, 'libpq 18 not found (direct TLS needs libpq 17+)');
      else cells.push(pgbenchHandshakeCell(ctx, handshakeTarget(lab, link.port, mode), base, lib18));
    }
    await interleave(ctx, cells);
  } finally {
    if (link) await stop(link.child);
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* 6. Server side: handshakes accepted, memory per idle TLS connection                             */
/* ---------------------------------------------------------------------------------------------- */

/** Opens `count` idle connections from a client process; resolves once they are all open. */
async function holdOpen(
  ctx: Ctx,
  rt: RuntimeInfo,
  t: PgTarget,
  count: number,
): Promise<{ opened: number; release: () => Promise<void> }> {
  const [cmd, ...pre] = rt.command;
  const worker = join(ctx.lab.distDir, 'throughput-worker.js');
  const job: Job = { kind: 'hold', driver: 'pgconn', target: t, count };
  const child = track(cmd!, [...pre, worker, JSON.stringify(job)], {
    cwd: ctx.lab.root,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  try {
    const m = await waitForLine(child, /^READY (\d+)$/, timeout(ctx.cfg), 'idle-connection client');
    child.stdout!.resume();
    child.stderr!.resume();
    return {
      opened: Number(m[1]),
      release: async () => {
        child.stdin!.end();
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        await Promise.race([exited, sleep(10_000)]);
        await stop(child);
      },
    };
  } catch (e) {
    await stop(child);
    throw e;
  }
}

/** Server RSS growth per idle TLS+SCRAM connection, KiB. */
async function idleMemory(ctx: Ctx, pid: number, t: PgTarget): Promise<{ kib: number; note: string }> {
  const node = ctx.runtimes.find((r) => r.id === 'node')!;
  // A few connections first, so lazily initialised server state is not charged to the idle ones.
  const settle = ctx.cfg.quick ? 100 : 1000;
  if (!ctx.cfg.quick) {
    const first = await holdOpen(ctx, node, t, 4);
    await first.release();
    await sleep(settle / 2);
  }
  const before = ctx.lab.rss(pid);
  const held = await holdOpen(ctx, node, t, ctx.cfg.idleConnections);
  try {
    await sleep(settle);
    const after = ctx.lab.rss(pid);
    if (before === null || after === null) throw new Error('server RSS not readable');
    return {
      kib: (after - before) / 1024 / held.opened,
      note: `${held.opened} connections: RSS ${(before / 2 ** 20).toFixed(1)} → ${(after / 2 ** 20).toFixed(1)} MiB`,
    };
  } finally {
    await held.release();
  }
}

/** What each runtime's floor server (throughput-floorserver.ts) runs on. */
const FLOOR_NOTES = {
  node: 'node:net + node:tls, trust, no pgconn code',
  bun: 'Bun.listen + upgradeTLS, trust, no pgconn code',
  deno: 'node:net + node:tls (Deno has no native server STARTTLS), trust, no pgconn code',
} as const;

export async function serverSection(ctx: Ctx): Promise<void> {
  const { lab, cfg } = ctx;
  const lib18 = await libpq18Dir();
  type S = {
    server: string;
    runtime: Figure['runtime'];
    svc: { port: number; pid: number; child: ChildProcess } | null;
    /** A fresh process of the same server, for the idle-memory rounds. */
    spawn?: () => Promise<{ port: number; pid: number; child: ChildProcess }>;
    reason?: string;
    note?: string;
  };
  const servers: S[] = [];
  servers.push(
    lab.serve
      ? {
          server: 'pgconn serve',
          runtime: 'node',
          svc: lab.serve,
          spawn: () => lab.startServe('node', false),
        }
      : { server: 'pgconn serve', runtime: 'node', svc: null, reason: 'not started' },
  );
  for (const rt of ['bun', 'deno'] as const) {
    if (!cfg.runtimes.includes(rt)) continue;
    // `pgconn serve --runtime bun|deno`: the CLI says whether that runtime can serve yet.
    try {
      const s = await lab.startServe(rt);
      servers.push({ server: 'pgconn serve', runtime: rt, svc: s, spawn: () => lab.startServe(rt, false) });
    } catch (e) {
      const msg = (e as Error).message.replace(/^pgconn: /, '');
      servers.push({
        server: 'pgconn serve',
        runtime: rt,
        svc: null,
        reason: `runtime not available: ${msg.split('\n')[0]}`,
      });
    }
  }
  // Each runtime's floor: its cheapest TLS server and just enough protocol for pgbench, no pgconn code.
  for (const rt of ['node', 'bun', 'deno'] as const) {
    if (rt !== 'node' && !cfg.runtimes.includes(rt)) continue;
    try {
      servers.push({
        server: 'runtime floor',
        runtime: rt,
        svc: await lab.startFloor(rt),
        spawn: () => lab.startFloor(rt),
        note: FLOOR_NOTES[rt],
      });
    } catch (e) {
      const msg = (e as Error).message.split('\n')[0];
      servers.push({ server: 'runtime floor', runtime: rt, svc: null, reason: `not available: ${msg}` });
    }
  }
  const bouncer = lab.pgbouncer;
  const pg18 = lab.pg.get(18);
  if (bouncer && !isUnavailable(bouncer) && pg18 && !isUnavailable(pg18))
    servers.push({
      server: bouncer.name,
      runtime: 'native',
      svc: bouncer,
      spawn: () => lab.spawnPgBouncer(pg18),
    });
  else
    servers.push({
      server: 'PgBouncer',
      runtime: 'native',
      svc: null,
      reason: bouncer && isUnavailable(bouncer) ? bouncer.unavailable : 'not started',
    });
  const gateway = lab.gateway;
  if (gateway && !isUnavailable(gateway))
    servers.push({
      server: 'pg-gateway',
      runtime: 'node',
      svc: gateway,
      spawn: () => lab.spawnGateway(),
      note: 'pg-gateway 0.2.4 has no SCRAM: TLS + MD5 password',
    });
  else
    servers.push({
      server: 'pg-gateway',
      runtime: 'node',
      svc: null,
      reason: gateway?.unavailable ?? 'not started',
    });

  // Handshakes per second, interleaved across the servers.
  const cells: Cell[] = servers.map((s) => {
    const base: FigureBase = {
      section: 'server',
      runtime: s.runtime,
      server: s.server,
      client: `pgbench -C (${cfg.serverClients} clients)`,
      mode: 'tls',
      unit: 'conn/s',
    };
    if (!s.svc) return { base, unavailable: s.reason ?? 'not available' };
    if (!existsSync(PGBENCH)) return { base, unavailable: `pgbench not found at ${PGBENCH}` };
    const t = lab.target(s.svc.port, 'sslrequest');
    return {
      base,
      once: async () => {
        if (cfg.warmup)
          await pgbenchHandshakes(ctx, t, cfg.serverClients, Math.max(2, cfg.serverHandshakes / 10), lib18);
        const cpu0 = cpuSecondsOf(s.svc!.pid);
        const r = await pgbenchHandshakes(ctx, t, cfg.serverClients, cfg.serverHandshakes, lib18);
        const cpu1 = cpuSecondsOf(s.svc!.pid);
        const sample: Sample = { value: r.connPerSec, notes: s.note ? [s.note] : [] };
        if (cpu0 !== null && cpu1 !== null)
          sample.serverCpuMs = ((cpu1 - cpu0) * 1000) / (cfg.serverClients * cfg.serverHandshakes);
        return sample;
      },
      // pgbench runs on the same 2 cores: the server's own CPU per handshake says what its rate costs.
      finish: (fig, samples) => {
        const ms = samples.map((x) => x.serverCpuMs).filter((x): x is number => x !== undefined);
        if (!ms.length) return;
        fig.serverCpuMs = percentile(ms, 50);
        fig.notes.push(`server CPU ${fig.serverCpuMs.toFixed(2)} ms per handshake`);
      },
    };
  });
  await interleave(ctx, cells);

  // Memory per idle TLS connection, one server at a time, each round in a fresh server process: the
  // ones above have carried the handshakes (and serve gigabytes of COPY), and a heap or malloc arena
  // already grown, or shrinking under GC, would not be charged to the idle connections (serve's figure
  // once came out negative; a second round in the same PgBouncer reuses the first one's memory).
  for (const s of servers) {
    const base: FigureBase = {
      section: 'server',
      runtime: s.runtime,
      server: s.server,
      client: `${cfg.idleConnections} idle conns (pgconn client)`,
      mode: 'tls',
      unit: 'KiB/conn',
    };
    const spawn = s.svc ? s.spawn : undefined;
    const cell: Cell = spawn
      ? {
          base,
          once: async () => {
            const own = await spawn();
            try {
              const m = await idleMemory(ctx, own.pid, lab.target(own.port, 'sslrequest'));
              return { value: m.kib, notes: [m.note, ...(s.note ? [s.note] : [])] };
            } finally {
              await stop(own.child);
            }
          },
          // The per-round RSS notes would repeat five times: keep the median round's.
          finish: (fig, samples) => medianNotes(fig, samples),
        }
      : { base, unavailable: s.reason ?? 'not available' };
    await interleave(ctx, [cell]);
  }
  // The floors and the Bun/Deno servers started here are stopped here (pgconn serve on Node belongs to the lab).
  for (const s of servers)
    if (s.svc && (s.server === 'runtime floor' || (s.runtime !== 'node' && s.server === 'pgconn serve')))
      await stop(s.svc.child);
}

/* ---------------------------------------------------------------------------------------------- */
/* 7. Memory with a slow consumer                                                                  */
/* ---------------------------------------------------------------------------------------------- */

export async function memorySection(ctx: Ctx): Promise<void> {
  const { lab, cfg } = ctx;
  const rows = Math.ceil(cfg.slowBytes / (cfg.rowWidth + 1));
  const cells: Cell[] = [];
  for (const rt of ctx.runtimes) {
    for (const driver of DRIVERS) {
      // Peers are informative here (no target): full mode only.
      if (driver !== 'pgconn' && (cfg.quick || !cfg.peerRuntimes.includes(rt.id))) continue;
      const base: FigureBase = {
        section: 'memory',
        runtime: rt.id,
        server: 'pgconn serve',
        client: driver,
        mode: 'tls',
        unit: 'MiB',
      };
      if (!rt.available) cells.push({ base, unavailable: rt.reason ?? 'runtime not available' });
      else if (!lab.serve) cells.push({ base, unavailable: 'pgconn serve not started' });
      else {
        const target = lab.target(lab.serve.port, 'sslrequest');
        const job: Job = {
          kind: 'slow-read',
          driver,
          target,
          rows,
          rowWidth: cfg.rowWidth,
          pauseEvery: 256 * 1024,
          pauseMs: 1,
        };
        cells.push({
          base,
          once: async () => {
            // A peer that ignores backpressure (postgres.js on Deno buffers the whole GiB, ~13 s) or
            // stalls is stopped after 90 s instead of the generic limit; a run takes 3-15 s.
            const limit = timeout(cfg, copyBytes(rows, cfg.rowWidth) * 8);
            const r = (await ctx.exec(
              rt,
              job,
              driver === 'pgconn' ? limit : Math.min(limit, 90_000),
            )) as SlowReadResult;
            const mib = (n: number) => (n / 2 ** 20).toFixed(1);
            return {
              value: (r.peakRss - r.idleRss) / 2 ** 20,
              notes: [
                `idle ${mib(r.idleRss)} MiB, peak ${mib(r.peakRss)} MiB (sampled every 5 ms)` +
                  (r.hwm !== null ? `, VmHWM ${mib(r.hwm)} MiB` : ''),
                `${(r.bytes / 2 ** 20).toFixed(0)} MiB consumed at ${mbps(r.bytes, r.ms).toFixed(0)} MB/s (1 ms pause per 256 KiB)`,
              ],
            };
          },
          finish: (fig, samples) => medianNotes(fig, samples),
        });
      }
    }
  }
  await interleave(ctx, cells);
}

/* ---------------------------------------------------------------------------------------------- */
/* 8. Codec micro-benchmark                                                                        */
/* ---------------------------------------------------------------------------------------------- */

export async function codecSection(ctx: Ctx): Promise<{ markdown: string; verdicts: string[] } | null> {
  const entry = join(ctx.lab.distDir, 'codec.js');
  if (!existsSync(entry)) {
    ctx.warn(`codec micro-benchmark not built (${entry})`);
    return null;
  }
  const r = await run(process.execPath, [entry, ...(ctx.cfg.quick ? ['--quick'] : [])], {
    cwd: ctx.lab.root,
    timeoutMs: ctx.cfg.quick ? 30_000 : 300_000,
  });
  if (r.code !== 0) {
    ctx.warn(`codec micro-benchmark failed: ${r.stderr.trim().split('\n')[0]}`);
    return null;
  }
  const verdicts = r.stdout.split('\n').filter((l) => /PASS|MISS|verdict/i.test(l));
  ctx.log(`codec: ${verdicts.join(' ') || 'done'}`);
  return { markdown: r.stdout.trim(), verdicts };
}

/** Versions for the report header. */
export function toolVersion(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')[0]!
      .trim();
  } catch {
    return 'not available';
  }
}

export { BENCH_PASSWORD, BENCH_USER };
