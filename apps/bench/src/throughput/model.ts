/** Configuration and the result model of the throughput bench (what report.ts renders). */
import type { PgVersion } from '@pgconn/testkit';
import { copyBytes, type Runtime } from './jobs.ts';
import type { Summary } from './stats.ts';

/** `handshake-link`: the direct TLS comparison over a link with latency, run by the handshake section. */
export type Section =
  | 'read'
  | 'write'
  | 'ceiling'
  | 'handshake'
  | 'handshake-link'
  | 'server'
  | 'memory'
  | 'codec';
export const SECTIONS: readonly Section[] = [
  'ceiling',
  'read',
  'write',
  'handshake',
  'server',
  'memory',
  'codec',
];
export const RUNTIMES: readonly Runtime[] = ['node', 'bun', 'deno'];

export type Mode = 'plain' | 'tls' | 'tls-direct';

/** A warm-up COPY (or ceiling run) moves this share of the timed volume: 1 / WARMUP_DIVISOR. */
export const WARMUP_DIVISOR = 8;

/** The warm-up volume for a timed volume of `n` rows or bytes. */
export const warmupOf = (n: number): number => Math.floor(n / WARMUP_DIVISOR);

export interface BenchConfig {
  quick: boolean;
  /** Timed runs per figure (after one warm-up run unless `warmup` is false). */
  runs: number;
  warmup: boolean;
  /** Characters per COPY row (`repeat('x', rowWidth)`), plus one newline on the wire. */
  rowWidth: number;
  readRows: number;
  writeRows: number;
  /** Bytes per raw-socket ceiling run (the COPY read volume). */
  rawBytes: number;
  chunk: number;
  /** Connections per handshake run, and untimed ones first. */
  handshakes: number;
  handshakeWarmup: number;
  /** pgbench -C transactions (one connection each) per client, and its client count. */
  serverHandshakes: number;
  serverClients: number;
  idleConnections: number;
  /** Bytes of the slow-consumer COPY (memory section). */
  slowBytes: number;
  runtimes: Runtime[];
  /** Runtimes on which node-postgres and postgres.js run as peers (they are npm packages). */
  peerRuntimes: Runtime[];
  /** Also run the peers over plaintext (the comparison is over TLS). */
  peersPlain: boolean;
  sections: Section[];
  pgVersions: PgVersion[];
  outDir: string;
}

const GiB = 2 ** 30;

export function fullConfig(outDir: string): BenchConfig {
  const rows = 1_000_000;
  return {
    quick: false,
    runs: 5,
    warmup: true,
    rowWidth: 1000,
    readRows: rows,
    writeRows: rows,
    rawBytes: copyBytes(rows, 1000),
    chunk: 64 * 1024,
    handshakes: 50,
    handshakeWarmup: 5,
    serverHandshakes: 150,
    serverClients: 4,
    // Enough that growth (~100 KiB each) dwarfs the allocator's noise.
    idleConnections: 1000,
    slowBytes: GiB,
    runtimes: [...RUNTIMES],
    // pg and postgres.js on every runtime: the comparison users make is on their own runtime.
    peerRuntimes: [...RUNTIMES],
    // The issue compares the peers over TLS; plaintext peer rows (--peers-plain) add ~20 min.
    peersPlain: false,
    sections: [...SECTIONS],
    pgVersions: [15, 18],
    outDir,
  };
}

/** CI smoke: tiny volumes, one run, no warm-up; every section still runs once. */
export function quickConfig(outDir: string): BenchConfig {
  const rows = 2_000;
  return {
    ...fullConfig(outDir),
    quick: true,
    runs: 1,
    warmup: false,
    readRows: rows,
    writeRows: rows,
    rawBytes: copyBytes(rows, 1000),
    handshakes: 3,
    handshakeWarmup: 1,
    serverHandshakes: 10,
    serverClients: 2,
    idleConnections: 10,
    slowBytes: 8 * 2 ** 20,
  };
}

export interface Figure {
  section: Section;
  /** The client's runtime; 'native' for libpq/pgbench, the server's for server-side rows. */
  runtime: Runtime | 'native';
  server: string;
  client: string;
  mode: Mode;
  unit: 'MB/s' | 'conn/s' | 'MiB' | 'KiB/conn';
  value: Summary | null;
  /** Throughput rows run by a client process: its CPU seconds (user + system) per GB moved. */
  cpu?: Summary | null;
  /** Server handshake rows: the server process's own CPU per handshake (median over runs), ms. */
  serverCpuMs?: number;
  /** Handshakes: latency to ReadyForQuery (pooled over all timed runs), ms. */
  latency?: { p50: number; p99: number; mean: number } | null;
  status: 'ok' | 'not available' | 'failed';
  reason?: string;
  notes: string[];
  tls?: { protocol: string | null; cipher: string | null } | null;
  /** Filled by the report: this figure ÷ the ceiling and ÷ each peer (same runtime, server, mode). */
  ratios?: Record<string, number | null>;
  /** Raw per-run values, for the JSON file. */
  samples?: number[];
}

export interface TargetStatus {
  id: string;
  target: string;
  status: 'PASS' | 'MISS' | 'not measured';
  detail: string;
}

export interface Machine {
  date: string;
  cpu: string;
  cores: number;
  memory: string;
  os: string;
  loadavgStart: number[];
  loadavgEnd: number[];
  runtimes: Record<string, string>;
  tls: string;
  libpq: string;
  postgres: Record<string, string>;
  pgbouncer: string;
}

export interface Report {
  machine: Machine;
  config: BenchConfig;
  figures: Figure[];
  targets: TargetStatus[];
  codec: { markdown: string; verdicts: string[] } | null;
  elapsedSeconds: number;
  warnings: string[];
}
