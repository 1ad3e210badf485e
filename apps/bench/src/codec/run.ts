/**
 * Runs every parser over every workload, checks each run's tally against the stream, and turns the
 * timings into a report (Markdown or JSON).
 */
import os from 'node:os';
import {
  PARSER_LABELS,
  type ParserId,
  parsePgconn,
  parsePgconnText,
  parsePgconnTextPerField,
  parsePgProtocol,
  Tally,
} from './parsers.ts';
import { copyBulkStream, copyLinesStream, dataRowStream, type Stream, type WorkloadId } from './streams.ts';

/** What a socket typically hands over per 'data' event on a busy connection. */
export const CHUNK_SIZE = 64 * 1024;

/** The issue's target: pgconn ≥ 1.5× pg-protocol's parse throughput on DataRow streams. */
export const DATAROW_TARGET = 1.5;

/** The variants the target applies to (`pgconn-text-per-field` is informative only). */
export const TARGET_PARSERS: readonly ParserId[] = ['pgconn', 'pgconn-text'];

export interface BenchOptions {
  /** DataRows in the DataRow-heavy stream. */
  rows: number;
  /** CopyData messages (one text line each) in the COPY-lines stream. */
  copyLines: number;
  /** 64 KiB CopyData messages in the bulk COPY stream. */
  bulkMessages: number;
  /** Timed runs per parser and workload. */
  runs: number;
  /** Untimed runs per parser and workload before timing (they also calibrate `minSampleMs`). */
  warmup: number;
  /**
   * A timed run repeats the parse until it lasts about this long (by the fastest parser's warm-up
   * time; same repetition count for every parser of a workload), so a 3 ms parse is not timed alone.
   */
  minSampleMs: number;
  chunkSize: number;
  workloads: readonly WorkloadId[];
  /** Called before each timed run (a full GC keeps one run's garbage out of the next). */
  gc?: () => void;
}

/** ~21 MB of DataRows, ~29 MB of COPY lines, 32 MiB of bulk COPY; about 15 s on 2 cores. */
export const FULL: BenchOptions = {
  rows: 200_000,
  copyLines: 250_000,
  bulkMessages: 512,
  runs: 7,
  warmup: 2,
  minSampleMs: 40,
  chunkSize: CHUNK_SIZE,
  workloads: ['datarow', 'copy-lines', 'copy-bulk'],
};

/** CI smoke: small streams, one run, no warm-up. */
export const QUICK: BenchOptions = {
  rows: 5_000,
  copyLines: 5_000,
  bulkMessages: 16,
  runs: 1,
  warmup: 0,
  minSampleMs: 0,
  chunkSize: CHUNK_SIZE,
  workloads: ['datarow', 'copy-lines', 'copy-bulk'],
};

function parsersFor(id: WorkloadId): ParserId[] {
  // pg-protocol hands CopyData over as Buffers, so COPY has no text variant to compare with.
  if (id !== 'datarow') return ['pgconn', 'pg-protocol'];
  return ['pgconn', 'pgconn-text', 'pgconn-text-per-field', 'pg-protocol'];
}

/** Zero-copy views of `bytes`, `size` bytes each (the last one shorter). */
export function chunkViews(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off < bytes.length; off += size) {
    out.push(new Uint8Array(bytes.buffer, bytes.byteOffset + off, Math.min(size, bytes.length - off)));
  }
  return out;
}

/** The same chunks as Buffers sharing `bytes`' memory (no copy). */
export function chunkBuffers(bytes: Uint8Array, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < bytes.length; off += size) {
    out.push(Buffer.from(bytes.buffer, bytes.byteOffset + off, Math.min(size, bytes.length - off)));
  }
  return out;
}

/** What a correct run of `parser` over `s` must report. */
export function expectedTally(s: Stream, parser: ParserId): Tally {
  const t = new Tally();
  t.messages = s.messages;
  t.rows = s.rows;
  t.fields = s.fields;
  t.nulls = s.nulls;
  const datarow = s.id === 'datarow';
  // pg-protocol's DataRow fields are strings: their byte length is not counted (that would cost a
  // Buffer.byteLength per field); pgconn's views are bytes and become chars only in the text variants.
  t.bytes = parser === 'pg-protocol' && datarow ? 0 : s.payloadBytes;
  t.chars = parser === 'pgconn' || !datarow ? 0 : s.payloadChars;
  return t;
}

const PARSE: Record<Exclude<ParserId, 'pg-protocol'>, (chunks: readonly Uint8Array[]) => Tally> = {
  pgconn: parsePgconn,
  'pgconn-text': parsePgconnText,
  'pgconn-text-per-field': parsePgconnTextPerField,
};

function checkTally(s: Stream, parser: ParserId, got: Tally): void {
  const want = expectedTally(s, parser);
  for (const k of ['messages', 'rows', 'fields', 'nulls', 'bytes', 'chars'] as const) {
    if (got[k] !== want[k]) {
      throw new Error(`${parser} on ${s.id}: saw ${k}=${got[k]}, expected ${want[k]}`);
    }
  }
}

/**
 * pg-protocol may write into the Buffers it is given: when a message is left incomplete and the next
 * chunk is shorter, it joins them inside the previous chunk's memory. Harmless on a socket, whose
 * chunks are fresh Buffers, but it would corrupt a stream shared between runs. So every parse gets
 * private copies of each chunk followed by a shorter one and of that shorter one (with uniform
 * chunks: the last two), made before the clock starts; the rest is shared, read-only.
 */
function pgProtocolChunks(shared: readonly Buffer[]): Buffer[] {
  const out = shared.slice();
  for (let i = 0; i + 1 < out.length; i++) {
    if (shared[i + 1]!.length < shared[i]!.length) {
      out[i] = Buffer.from(shared[i]!);
      out[i + 1] = Buffer.from(shared[i + 1]!);
    }
  }
  return out;
}

/**
 * One timed sample: `reps` back-to-back parses of the whole stream, in milliseconds per parse.
 * pgconn's Framer never writes into the chunks it is given, so they are shared by every parse.
 * Every parse's tally is checked against the stream once the clock has stopped.
 */
function sample(
  s: Stream,
  parser: ParserId,
  chunkSize: number,
  reps: number,
  gc?: () => void,
): { ms: number; tally: Tally } {
  const tallies: Tally[] = new Array(reps);
  let run: () => void;
  if (parser === 'pg-protocol') {
    const shared = chunkBuffers(s.bytes, chunkSize);
    const lists = Array.from({ length: reps }, () => pgProtocolChunks(shared));
    run = () => {
      for (let r = 0; r < reps; r++) tallies[r] = parsePgProtocol(lists[r]!);
    };
  } else {
    const chunks = chunkViews(s.bytes, chunkSize);
    const fn = PARSE[parser];
    run = () => {
      for (let r = 0; r < reps; r++) tallies[r] = fn(chunks);
    };
  }
  gc?.();
  const t0 = performance.now();
  run();
  const ms = (performance.now() - t0) / reps;
  for (const t of tallies) checkTally(s, parser, t);
  return { ms, tally: tallies[0]! };
}

export interface Stats {
  median: number;
  min: number;
  max: number;
}

export interface Measurement {
  workload: WorkloadId;
  parser: ParserId;
  /** Parsed stream size in bytes (whole wire stream, headers included). */
  streamBytes: number;
  timesMs: number[];
  /** MB/s, MB = 10^6 bytes of wire stream. */
  mbPerSec: Stats;
  /** DataRows/s (DataRow workload) or CopyData messages/s (COPY workloads). */
  rowsPerSec: Stats;
  tally: Tally;
}

export interface Ratio {
  workload: WorkloadId;
  parser: ParserId;
  /** Median throughput of `parser` ÷ median throughput of pg-protocol. */
  ratio: number;
  /** Target and verdict: DataRow workload, `TARGET_PARSERS` only. */
  target?: number;
  pass?: boolean;
}

export interface Machine {
  cpu: string;
  cores: number;
  node: string;
  platform: string;
  loadavg: number[];
}

export interface Report {
  date: string;
  machine: Machine;
  options: Omit<BenchOptions, 'gc'>;
  gc: boolean;
  workloads: {
    id: WorkloadId;
    description: string;
    bytes: number;
    messages: number;
    rows: number;
    /** Parses per timed run (see `minSampleMs`). */
    repsPerRun: number;
  }[];
  results: Measurement[];
  ratios: Ratio[];
}

function stats(values: number[]): Stats {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  const median = v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]! };
}

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown CPU',
    cores: cpus.length,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

function buildStream(id: WorkloadId, o: BenchOptions): Stream {
  if (id === 'datarow') return dataRowStream(o.rows);
  if (id === 'copy-lines') return copyLinesStream(o.copyLines);
  return copyBulkStream(o.bulkMessages);
}

/** Runs the whole benchmark. Throws if any parser's tally disagrees with the stream. */
export function runCodecBench(o: BenchOptions): Report {
  const report: Report = {
    date: new Date().toISOString(),
    machine: machine(),
    options: {
      rows: o.rows,
      copyLines: o.copyLines,
      bulkMessages: o.bulkMessages,
      runs: o.runs,
      warmup: o.warmup,
      minSampleMs: o.minSampleMs,
      chunkSize: o.chunkSize,
      workloads: o.workloads,
    },
    gc: o.gc !== undefined,
    workloads: [],
    results: [],
    ratios: [],
  };
  for (const id of o.workloads) {
    const s = buildStream(id, o);
    const parsers = parsersFor(id);
    let fastest = Number.POSITIVE_INFINITY;
    for (let w = 0; w < o.warmup; w++) {
      for (const p of parsers) fastest = Math.min(fastest, sample(s, p, o.chunkSize, 1).ms);
    }
    const reps =
      o.minSampleMs > 0 && Number.isFinite(fastest)
        ? Math.min(1000, Math.max(1, Math.ceil(o.minSampleMs / fastest)))
        : 1;
    report.workloads.push({
      id,
      description: s.description,
      bytes: s.bytes.length,
      messages: s.messages,
      rows: s.rows,
      repsPerRun: reps,
    });
    const times = new Map<ParserId, number[]>(parsers.map((p) => [p, []]));
    const tallies = new Map<ParserId, Tally>();
    for (let r = 0; r < o.runs; r++) {
      // Rotate the order so drift on a shared machine does not always hit the same parser.
      for (let k = 0; k < parsers.length; k++) {
        const p = parsers[(r + k) % parsers.length]!;
        const { ms, tally } = sample(s, p, o.chunkSize, reps, o.gc);
        times.get(p)!.push(ms);
        tallies.set(p, tally);
      }
    }
    for (const p of parsers) {
      const ms = times.get(p)!;
      report.results.push({
        workload: id,
        parser: p,
        streamBytes: s.bytes.length,
        timesMs: ms.map((x) => Math.round(x * 1000) / 1000),
        mbPerSec: stats(ms.map((x) => s.bytes.length / 1e3 / x)),
        rowsPerSec: stats(ms.map((x) => (s.rows * 1e3) / x)),
        tally: tallies.get(p)!,
      });
    }
    const base = report.results.find((m) => m.workload === id && m.parser === 'pg-protocol')!;
    for (const p of parsers) {
      if (p === 'pg-protocol') continue;
      const m = report.results.find((x) => x.workload === id && x.parser === p)!;
      const ratio = m.mbPerSec.median / base.mbPerSec.median;
      const r: Ratio = { workload: id, parser: p, ratio };
      if (id === 'datarow' && TARGET_PARSERS.includes(p)) {
        r.target = DATAROW_TARGET;
        r.pass = ratio >= DATAROW_TARGET;
      }
      report.ratios.push(r);
    }
  }
  return report;
}

const WORKLOAD_LABELS: Record<WorkloadId, string> = {
  datarow: 'DataRow',
  'copy-lines': 'CopyData lines',
  'copy-bulk': 'CopyData 64 KiB',
};

const fmt = (x: number, digits = 0): string =>
  x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

const rate = (x: number): string => (x >= 1e6 ? `${fmt(x / 1e6, 2)} M` : `${fmt(x / 1e3, 1)} k`);

export function machineLine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, node ${m.node} (${m.platform}), load average ${m.loadavg.join(' ')}`;
}

export function toMarkdown(r: Report): string {
  const out: string[] = [];
  out.push(`Machine: ${machineLine(r.machine)}`);
  out.push(
    `Date: ${r.date}; ${r.options.runs} timed run(s) after ${r.options.warmup} warm-up(s) per parser; ` +
      `${r.options.chunkSize / 1024} KiB chunks; ${r.gc ? 'full GC before each run' : 'no forced GC'}.`,
  );
  out.push('');
  out.push('Workloads:');
  for (const w of r.workloads) {
    out.push(
      `- ${WORKLOAD_LABELS[w.id]}: ${w.description}; ${fmt(w.bytes / 1e6, 1)} MB, ${fmt(w.messages)} messages` +
        (w.repsPerRun > 1 ? `; ${w.repsPerRun} parses per timed run` : ''),
    );
  }
  out.push('');
  out.push(
    '| Workload | Parser | MB/s median | MB/s min | MB/s max | rows or msgs/s (median) | vs pg-protocol |',
  );
  out.push('|---|---|--:|--:|--:|--:|--:|');
  for (const m of r.results) {
    const ratio = r.ratios.find((x) => x.workload === m.workload && x.parser === m.parser);
    out.push(
      `| ${WORKLOAD_LABELS[m.workload]} | ${PARSER_LABELS[m.parser]} | ${fmt(m.mbPerSec.median)} | ${fmt(m.mbPerSec.min)} | ` +
        `${fmt(m.mbPerSec.max)} | ${rate(m.rowsPerSec.median)} | ${ratio ? `${fmt(ratio.ratio, 2)}×` : '1.00×'} |`,
    );
  }
  const targets = r.ratios.filter((x) => x.target !== undefined);
  if (targets.length > 0) {
    out.push('');
    out.push(`Target: DataRow parse throughput ≥ ${DATAROW_TARGET}× pg-protocol (median MB/s).`);
    // One cold run measures the JIT warming up, not the parser: report it, judge nothing.
    const judged = r.options.warmup > 0 && r.options.runs >= 3;
    for (const t of targets) {
      const verdict = judged ? (t.pass ? 'PASS' : 'MISS') : 'not judged (no warm-up / too few runs)';
      out.push(`- ${PARSER_LABELS[t.parser]}: ${fmt(t.ratio, 2)}× — ${verdict}`);
    }
  }
  return `${out.join('\n')}\n`;
}
