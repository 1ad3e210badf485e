/**
 * What the orchestrator asks a client process to do (one JSON document on the command line) and what
 * the client answers (one `RESULT {json}` line on stdout). Shared by throughput.ts and worker.ts.
 *
 * Client work always runs in a process of its own (`dist/throughput-worker.js`), started with the
 * runtime under test (node, bun or deno): the orchestrator stays out of its event loop, its memory
 * and its CPU profile, and the same job file runs unchanged on every runtime.
 */

export type Runtime = 'node' | 'bun' | 'deno';
export type Driver = 'pgconn' | 'pg' | 'postgres.js';

/** One PostgreSQL-protocol server to connect to. */
export interface PgTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** off: sslmode=disable; sslrequest: sslmode=verify-full; direct: verify-full + sslnegotiation=direct. */
  tls: 'off' | 'sslrequest' | 'direct';
  /** CA certificate file for verify-full (required unless tls is off). */
  ca: string | null;
}

/** `COPY (SELECT repeat('x', rowWidth) FROM generate_series(1, rows)) TO STDOUT`. */
export interface CopyOutJob {
  kind: 'copy-out';
  driver: Driver;
  target: PgTarget;
  rows: number;
  rowWidth: number;
  warmupRows: number;
  runs: number;
}

/** `COPY <table> FROM STDIN` of `rows` lines of `rowWidth` 'x' and a newline, in ~64 KiB chunks. */
export interface CopyInJob {
  kind: 'copy-in';
  driver: Driver;
  target: PgTarget;
  table: string;
  rows: number;
  rowWidth: number;
  warmupRows: number;
  runs: number;
  /** TRUNCATE the table before each run (real PostgreSQL; the `pgconn serve` sink keeps nothing). */
  truncate: boolean;
}

/** Raw socket ceiling against rawserver.ts: read or write `bytes` in `chunk`-sized pieces. */
export interface RawJob {
  kind: 'raw';
  direction: 'read' | 'write';
  host: string;
  port: number;
  tls: boolean;
  ca: string | null;
  bytes: number;
  chunk: number;
  warmupBytes: number;
  runs: number;
}

/** Sequential connections, each to ReadyForQuery and closed. */
export interface HandshakeJob {
  kind: 'handshake';
  driver: Driver;
  target: PgTarget;
  count: number;
  warmup: number;
  runs: number;
  /** pgconn only: derive the SCRAM keys on every connection (scramKeyCache: null), as pg and libpq do. */
  noKeyCache?: boolean;
}

/** One COPY TO STDOUT read by a consumer that sleeps `pauseMs` after every `pauseEvery` bytes. */
export interface SlowReadJob {
  kind: 'slow-read';
  driver: Driver;
  target: PgTarget;
  rows: number;
  rowWidth: number;
  pauseEvery: number;
  pauseMs: number;
}

/**
 * Opens `count` connections (TLS+SCRAM), prints `READY <n>`, keeps them idle until stdin closes,
 * then closes them. The orchestrator measures the server's RSS meanwhile.
 */
export interface HoldJob {
  kind: 'hold';
  driver: Driver;
  target: PgTarget;
  count: number;
}

export type Job = CopyOutJob | CopyInJob | RawJob | HandshakeJob | SlowReadJob | HoldJob;

export interface RunSample {
  ms: number;
  bytes: number;
  /** Client CPU time (user + system) of the run: robust where wall time is not (a loaded machine). */
  cpuMs?: number;
}

export interface TlsSeen {
  protocol: string | null;
  cipher: string | null;
}

export interface ThroughputResult {
  kind: 'throughput';
  runs: RunSample[];
  tls: TlsSeen | null;
  /** Extra facts (row counts verified, chunk counts...). */
  notes: string[];
}

export interface HandshakeResult {
  kind: 'handshake';
  /** Per run: wall time for `count` open+close cycles, and each connect's latency to ReadyForQuery. */
  runs: { ms: number; latenciesMs: number[] }[];
  tls: TlsSeen | null;
}

export interface SlowReadResult {
  kind: 'slow-read';
  bytes: number;
  ms: number;
  /** RSS with the connection open and idle, before the COPY. */
  idleRss: number;
  /** Highest RSS sampled (every 5 ms) during the COPY. */
  peakRss: number;
  /** VmHWM at the end (peak over the whole process life; Linux only, else null). */
  hwm: number | null;
}

export interface HoldResult {
  kind: 'hold';
  opened: number;
}

export type JobResult = ThroughputResult | HandshakeResult | SlowReadResult | HoldResult;

export const copyOutSql = (rows: number, width: number): string =>
  `COPY (SELECT repeat('x', ${width}) FROM generate_series(1, ${rows})) TO STDOUT`;

/** Bytes of COPY text output for `rows` rows of `width` characters (one newline each). */
export const copyBytes = (rows: number, width: number): number => rows * (width + 1);
