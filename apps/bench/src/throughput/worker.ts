/**
 * The client side of every throughput, handshake and memory measurement, in a process of its own:
 *
 *   node|bun|deno dist/throughput-worker.js '<job json>'
 *
 * Prints `RESULT <json>` on stdout and exits 0, or prints the error on stderr and exits 1. Only
 * `node:` modules and dynamic imports are used, so the same file runs on Node, Bun and Deno; pgconn
 * is reached through the runtime's own transport (`@pgconn/transport-node`, `-bun`, `-deno`).
 */
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tls from 'node:tls';
import {
  type CopyInJob,
  type CopyOutJob,
  copyBytes,
  copyOutSql,
  type Driver,
  type HandshakeJob,
  type HandshakeResult,
  type HoldJob,
  type Job,
  type JobResult,
  type PgTarget,
  type RawJob,
  type RunSample,
  type Runtime,
  type SlowReadJob,
  type SlowReadResult,
  type ThroughputResult,
  type TlsSeen,
} from './jobs.ts';

const g = globalThis as { Bun?: unknown; Deno?: unknown };
export const RUNTIME: Runtime = g.Bun !== undefined ? 'bun' : g.Deno !== undefined ? 'deno' : 'node';

const now = (): number => performance.now();
const cpu = (since?: NodeJS.CpuUsage): NodeJS.CpuUsage => process.cpuUsage(since);
const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/* ---------------------------------------------------------------------------------------------- */
/* A minimal common face over the three drivers                                                    */
/* ---------------------------------------------------------------------------------------------- */

interface Client {
  copyOut(sql: string, onChunk: (n: number) => void | Promise<void>): Promise<void>;
  /** Returns the number of rows the server reports, or null when the driver does not tell. */
  copyIn(sql: string, chunks: () => Iterable<Uint8Array>): Promise<number | null>;
  query(sql: string): Promise<void>;
  tls(): TlsSeen | null;
  close(): Promise<void>;
}

export function conninfoOf(t: PgTarget): string {
  const parts = [
    `host=${t.host}`,
    `port=${t.port}`,
    `user=${t.user}`,
    `dbname=${t.database}`,
    'gssencmode=disable',
  ];
  // An empty value would swallow the next keyword (libpq's conninfo syntax): leave it out.
  if (t.password) parts.push(`password=${t.password}`);
  if (t.tls === 'off') parts.push('sslmode=disable');
  else {
    parts.push('sslmode=verify-full', `sslrootcert=${t.ca}`);
    if (t.tls === 'direct') parts.push('sslnegotiation=direct');
  }
  return parts.join(' ');
}

interface PgconnConnection {
  copyOutTo(sql: string, onData: (data: Uint8Array) => void | Promise<void>): Promise<string>;
  copyIn(sql: string, source: Iterable<Uint8Array>): Promise<string>;
  query(sql: string): Promise<unknown>;
  close(): Promise<void>;
  tls: { protocol?: string | null; cipher?: string | null } | null;
}

type PgconnConnect = (conninfo: string) => Promise<PgconnConnection>;
let pgconnConnect: PgconnConnect | null = null;
/** Set by a handshake job with `noKeyCache` before the first connection: `scramKeyCache: null`. */
let pgconnOptions: { scramKeyCache?: null } = {};

/** pgconn's connect for this runtime, through the runtime's own transport. */
async function pgconnConnector(): Promise<PgconnConnect> {
  if (pgconnConnect) return pgconnConnect;
  const options = pgconnOptions;
  if (RUNTIME === 'node') {
    const m = await import('@pgconn/transport-node');
    pgconnConnect = (c) => m.connect(c, { env: {}, ...options }) as unknown as Promise<PgconnConnection>;
  } else if (RUNTIME === 'bun') {
    const core = await import('@pgconn/core');
    const spec = '@pgconn/transport-bun';
    const m = (await import(spec)) as { bunTransport?: unknown; BunTransport?: new () => unknown };
    const transport = m.bunTransport ?? (m.BunTransport ? new m.BunTransport() : null);
    if (!transport) throw new Error('@pgconn/transport-bun exports no BunTransport');
    pgconnConnect = (c) =>
      core.connect(
        transport as Parameters<typeof core.connect>[0],
        core.resolveOptions({ conninfo: c, env: {} }),
        options,
      ) as unknown as Promise<PgconnConnection>;
  } else {
    const spec = '@pgconn/transport-deno';
    const m = (await import(spec)) as {
      connect?: (
        c: string,
        o: { env: Record<string, string>; scramKeyCache?: null },
      ) => Promise<PgconnConnection>;
    };
    if (!m.connect) throw new Error('@pgconn/transport-deno exports no connect');
    pgconnConnect = (c) => m.connect!(c, { env: {}, ...options });
  }
  return pgconnConnect;
}

async function pgconnClient(t: PgTarget): Promise<Client> {
  const conn = await (await pgconnConnector())(conninfoOf(t));
  return {
    async copyOut(sql, onChunk) {
      // The callback form: no promise per row (the async generator `copyOut` makes one).
      await conn.copyOutTo(sql, (v) => onChunk(v.length));
    },
    async copyIn(sql, chunks) {
      const tag = await conn.copyIn(sql, chunks());
      const m = /^COPY (\d+)$/.exec(tag);
      return m ? Number(m[1]) : null;
    },
    async query(sql) {
      await conn.query(sql);
    },
    tls: () => (conn.tls ? { protocol: conn.tls.protocol ?? null, cipher: conn.tls.cipher ?? null } : null),
    close: () => conn.close(),
  };
}

function nodeTlsSeen(s: unknown): TlsSeen | null {
  const t = s as tls.TLSSocket | null | undefined;
  if (!t || typeof t.getCipher !== 'function') return null;
  return {
    protocol: t.getProtocol?.() ?? null,
    cipher: t.getCipher()?.standardName ?? t.getCipher()?.name ?? null,
  };
}

/** The CA file is read once per process (not per connection) for pg and postgres.js. */
const caCache = new Map<string, string>();
function cachedCa(path: string): string {
  let v = caCache.get(path);
  if (v === undefined) {
    v = readFileSync(path, 'utf8');
    caCache.set(path, v);
  }
  return v;
}

const caOf = (t: PgTarget): string => cachedCa(t.ca!);

async function pgClient(t: PgTarget): Promise<Client> {
  if (t.tls === 'direct') throw new Error('node-postgres does not support direct TLS');
  const pg = (await import('pg')).default;
  const copyStreams = (await import('pg-copy-streams')) as unknown as {
    default?: { to: (sql: string) => unknown; from: (sql: string) => unknown };
    to: (sql: string) => unknown;
    from: (sql: string) => unknown;
  };
  const cs = copyStreams.default ?? copyStreams;
  const client = new pg.Client({
    host: t.host,
    port: t.port,
    user: t.user,
    password: t.password,
    database: t.database,
    ssl: t.tls === 'off' ? false : { ca: caOf(t) },
  });
  await client.connect();
  return {
    async copyOut(sql, onChunk) {
      const stream = client.query(cs.to(sql) as never) as unknown as Readable;
      await new Promise<void>((resolve, reject) => {
        stream.on('error', reject);
        stream.on('end', resolve);
        stream.on('data', (d: Buffer) => {
          const p = onChunk(d.length);
          if (p) {
            stream.pause();
            p.then(() => stream.resume(), reject);
          }
        });
      });
    },
    async copyIn(sql, chunks) {
      const stream = client.query(cs.from(sql) as never) as unknown as Writable & { rowCount?: number };
      await pipeline(Readable.from(chunks()), stream);
      return stream.rowCount ?? null;
    },
    async query(sql) {
      await client.query(sql);
    },
    tls: () => nodeTlsSeen((client as unknown as { connection: { stream: unknown } }).connection.stream),
    close: () => client.end(),
  };
}

async function postgresJsClient(t: PgTarget): Promise<Client> {
  if (t.tls === 'direct') throw new Error('postgres.js does not support direct TLS');
  const postgres = (await import('postgres')).default;
  const sql = postgres({
    host: t.host,
    port: t.port,
    user: t.user,
    password: t.password,
    database: t.database,
    ssl: t.tls === 'off' ? false : { ca: caOf(t) },
    max: 1,
    fetch_types: false,
    prepare: false,
    onnotice: () => {},
    idle_timeout: 0,
  });
  // Connect now (postgres.js connects lazily), outside any timing.
  await sql.unsafe('select 1');
  return {
    async copyOut(q, onChunk) {
      const stream = (await sql.unsafe(q).readable()) as unknown as Readable;
      await new Promise<void>((resolve, reject) => {
        stream.on('error', reject);
        stream.on('end', resolve);
        stream.on('data', (d: Buffer) => {
          const p = onChunk(d.length);
          if (p) {
            stream.pause();
            p.then(() => stream.resume(), reject);
          }
        });
      });
    },
    async copyIn(q, chunks) {
      const stream = (await sql.unsafe(q).writable()) as unknown as Writable;
      await pipeline(Readable.from(chunks()), stream);
      return null;
    },
    async query(q) {
      await sql.unsafe(q);
    },
    // postgres.js hides its socket; the cipher is the server's choice, reported by the other clients.
    tls: () => null,
    async close() {
      await sql.end({ timeout: 5 });
    },
  };
}

function clientFor(driver: Driver, t: PgTarget): Promise<Client> {
  switch (driver) {
    case 'pgconn':
      return pgconnClient(t);
    case 'pg':
      return pgClient(t);
    case 'postgres.js':
      return postgresJsClient(t);
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* COPY                                                                                            */
/* ---------------------------------------------------------------------------------------------- */

/**
 * A client for one COPY TO, closed afterwards. Every COPY TO (warm-up, timed run, slow read) gets a
 * connection of its own: on Deno 2.9 a connection's second COPY TO never completes with pg +
 * pg-copy-streams (which reads the socket in paused 'readable' mode, and Deno's node:net emits no
 * 'readable' there) nor, in most tries, with postgres.js (the second `.readable()` never resolves).
 * The connection is opened before the clock starts, so the timed span is the same for every driver.
 */
async function withClient<T>(driver: Driver, t: PgTarget, use: (c: Client) => Promise<T>): Promise<T> {
  const client = await clientFor(driver, t);
  try {
    return await use(client);
  } finally {
    await client.close().catch(() => {});
  }
}

async function copyOut(job: CopyOutJob): Promise<ThroughputResult> {
  const runs: RunSample[] = [];
  let seen: TlsSeen | null = null;
  const once = (rows: number): Promise<RunSample> =>
    withClient(job.driver, job.target, async (client) => {
      let bytes = 0;
      const c0 = cpu();
      const t0 = now();
      await client.copyOut(copyOutSql(rows, job.rowWidth), (n) => {
        bytes += n;
      });
      const ms = now() - t0;
      const used = cpuMs(cpu(c0));
      const want = copyBytes(rows, job.rowWidth);
      if (bytes !== want) throw new Error(`copy-out received ${bytes} bytes, expected ${want}`);
      seen = client.tls();
      return { ms, bytes, cpuMs: used };
    });
  if (job.warmupRows > 0) await once(job.warmupRows);
  for (let i = 0; i < job.runs; i++) runs.push(await once(job.rows));
  return { kind: 'throughput', runs, tls: seen, notes: [] };
}

/** ~64 KiB chunks of whole rows, the same buffer handed out again and again (nobody writes into it). */
function* rowChunks(rows: number, width: number): Generator<Uint8Array> {
  const line = width + 1;
  const perChunk = Math.max(1, Math.floor((64 * 1024) / line));
  const chunk = Buffer.alloc(perChunk * line, 'x'.charCodeAt(0));
  for (let i = line - 1; i < chunk.length; i += line) chunk[i] = 0x0a;
  let left = rows;
  while (left >= perChunk) {
    yield chunk;
    left -= perChunk;
  }
  if (left > 0) yield chunk.subarray(0, left * line);
}

async function copyIn(job: CopyInJob): Promise<ThroughputResult> {
  const client = await clientFor(job.driver, job.target);
  const runs: RunSample[] = [];
  const notes: string[] = [];
  const sql = `COPY ${job.table} FROM STDIN`;
  try {
    const once = async (rows: number): Promise<RunSample> => {
      if (job.truncate) await client.query(`TRUNCATE ${job.table}`);
      const c0 = cpu();
      const t0 = now();
      const reported = await client.copyIn(sql, () => rowChunks(rows, job.rowWidth));
      const ms = now() - t0;
      const used = cpuMs(cpu(c0));
      if (reported !== null && reported !== rows)
        throw new Error(`server reported COPY ${reported}, expected ${rows}`);
      return { ms, bytes: copyBytes(rows, job.rowWidth), cpuMs: used };
    };
    if (job.warmupRows > 0) await once(job.warmupRows);
    for (let i = 0; i < job.runs; i++) runs.push(await once(job.rows));
    if (job.truncate) {
      // Checked once, after the last run, outside the timing.
      const counted = await countRows(job, client);
      if (counted !== null && counted !== job.rows)
        throw new Error(`table holds ${counted} rows after COPY, expected ${job.rows}`);
      if (counted !== null) notes.push(`rows verified: ${counted}`);
      await client.query(`TRUNCATE ${job.table}`);
    }
    return { kind: 'throughput', runs, tls: client.tls(), notes };
  } finally {
    await client.close().catch(() => {});
  }
}

async function countRows(job: CopyInJob, client: Client): Promise<number | null> {
  // A COPY TO of the count, through the same client: every driver can run it and report the bytes.
  let text = '';
  if (job.driver === 'pgconn') {
    const conn = await (await pgconnConnector())(conninfoOf(job.target));
    try {
      await conn.copyOutTo(`COPY (SELECT count(*) FROM ${job.table}) TO STDOUT`, (v) => {
        text += new TextDecoder().decode(v);
      });
    } finally {
      await conn.close();
    }
    return Number(text.trim());
  }
  void client;
  return null;
}

/* ---------------------------------------------------------------------------------------------- */
/* Raw socket ceiling                                                                              */
/* ---------------------------------------------------------------------------------------------- */

function rawConnect(job: RawJob): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = job.tls
      ? tls.connect({
          host: job.host,
          port: job.port,
          ca: readFileSync(job.ca!, 'utf8'),
          servername: 'localhost',
        })
      : net.connect({ host: job.host, port: job.port });
    s.once('error', reject);
    s.once(job.tls ? 'secureConnect' : 'connect', () => {
      s.off('error', reject);
      s.setNoDelay(true);
      resolve(s);
    });
  });
}

async function rawOnce(job: RawJob, bytes: number, seen: { tls: TlsSeen | null }): Promise<RunSample> {
  const s = await rawConnect(job);
  if (job.tls) seen.tls = nodeTlsSeen(s);
  try {
    if (job.direction === 'read') {
      return await new Promise<RunSample>((resolve, reject) => {
        let got = 0;
        const c0 = cpu();
        const t0 = now();
        s.on('data', (d: Buffer) => {
          got += d.length;
          if (got >= bytes) resolve({ ms: now() - t0, bytes: got, cpuMs: cpuMs(cpu(c0)) });
        });
        s.on('error', reject);
        s.on('end', () =>
          got < bytes ? reject(new Error(`raw read ended at ${got} of ${bytes}`)) : undefined,
        );
        s.write(`R ${bytes} ${job.chunk}\n`);
      });
    }
    const chunk = Buffer.alloc(job.chunk, 0x78);
    const acked = new Promise<void>((resolve, reject) => {
      s.on('data', (d: Buffer) => (d.includes(0x4b) ? resolve() : undefined));
      s.on('error', reject);
      s.on('end', () => reject(new Error('raw write: server closed before acknowledging')));
    });
    s.write(`W ${bytes}\n`);
    const c0 = cpu();
    const t0 = now();
    for (let sent = 0; sent < bytes; ) {
      const n = Math.min(job.chunk, bytes - sent);
      if (!s.write(n === job.chunk ? chunk : chunk.subarray(0, n)))
        await new Promise<void>((r) => s.once('drain', r));
      sent += n;
    }
    await acked;
    return { ms: now() - t0, bytes, cpuMs: cpuMs(cpu(c0)) };
  } finally {
    s.destroy();
  }
}

async function raw(job: RawJob): Promise<ThroughputResult> {
  const seen: { tls: TlsSeen | null } = { tls: null };
  if (job.warmupBytes > 0) await rawOnce(job, job.warmupBytes, seen);
  const runs: RunSample[] = [];
  for (let i = 0; i < job.runs; i++) runs.push(await rawOnce(job, job.bytes, seen));
  return { kind: 'throughput', runs, tls: seen.tls, notes: [`${RUNTIME} node:net/node:tls API`] };
}

/* ---------------------------------------------------------------------------------------------- */
/* Handshakes                                                                                      */
/* ---------------------------------------------------------------------------------------------- */

/** Opens a connection to ReadyForQuery; the returned function closes it. */
async function openOnce(
  driver: Driver,
  t: PgTarget,
): Promise<{ close: () => Promise<void>; tls: TlsSeen | null }> {
  switch (driver) {
    case 'pgconn': {
      const c = await (await pgconnConnector())(conninfoOf(t));
      return {
        close: () => c.close(),
        tls: c.tls ? { protocol: c.tls.protocol ?? null, cipher: c.tls.cipher ?? null } : null,
      };
    }
    case 'pg': {
      if (t.tls === 'direct') throw new Error('node-postgres does not support direct TLS');
      const pg = (await import('pg')).default;
      const c = new pg.Client({
        host: t.host,
        port: t.port,
        user: t.user,
        password: t.password,
        database: t.database,
        ssl: t.tls === 'off' ? false : { ca: caOf(t) },
      });
      await c.connect();
      return {
        close: () => c.end(),
        tls: nodeTlsSeen((c as unknown as { connection: { stream: unknown } }).connection.stream),
      };
    }
    case 'postgres.js': {
      if (t.tls === 'direct') throw new Error('postgres.js does not support direct TLS');
      const postgres = (await import('postgres')).default;
      const sql = postgres({
        host: t.host,
        port: t.port,
        user: t.user,
        password: t.password,
        database: t.database,
        ssl: t.tls === 'off' ? false : { ca: caOf(t) },
        max: 1,
        fetch_types: false,
        onnotice: () => {},
      });
      // postgres.js connects lazily, on the first query: its "open" is `select 1` (one more round
      // trip than the others). reserve() would do without it, but hangs with fetch_types off (3.4.9),
      // and fetch_types on costs a pg_type query per connection.
      await sql.unsafe('select 1');
      return {
        close: () => sql.end({ timeout: 5 }),
        tls: null,
      };
    }
  }
}

async function handshake(job: HandshakeJob): Promise<HandshakeResult> {
  if (job.noKeyCache) pgconnOptions = { scramKeyCache: null };
  let seen: TlsSeen | null = null;
  const cycle = async (latencies: number[] | null) => {
    const t0 = now();
    const c = await openOnce(job.driver, job.target);
    latencies?.push(now() - t0);
    seen ??= c.tls;
    await c.close();
  };
  for (let i = 0; i < job.warmup; i++) await cycle(null);
  const runs: HandshakeResult['runs'] = [];
  for (let r = 0; r < job.runs; r++) {
    const latenciesMs: number[] = [];
    const t0 = now();
    for (let i = 0; i < job.count; i++) await cycle(latenciesMs);
    runs.push({ ms: now() - t0, latenciesMs });
  }
  return { kind: 'handshake', runs, tls: seen };
}

/* ---------------------------------------------------------------------------------------------- */
/* Memory: a slow consumer                                                                         */
/* ---------------------------------------------------------------------------------------------- */

function vmHwm(): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

async function slowRead(job: SlowReadJob): Promise<SlowReadResult> {
  // A small COPY first, so code paths are compiled and buffers allocated before "idle".
  await withClient(job.driver, job.target, (c) => c.copyOut(copyOutSql(100, job.rowWidth), () => {}));
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  await sleep(200);
  // "Idle" is taken before the measured connection opens, so its own memory counts as streaming
  // cost: pg's COPY TO on Deno never starts on a connection left idle for 200 ms (see withClient).
  const idleRss = process.memoryUsage.rss();
  let peakRss = idleRss;
  const sample = (): void => {
    const r = process.memoryUsage.rss();
    if (r > peakRss) peakRss = r;
  };
  const sampler = setInterval(sample, 5);
  try {
    return await withClient(job.driver, job.target, async (client) => {
      let bytes = 0;
      let sincePause = 0;
      const t0 = now();
      await client.copyOut(copyOutSql(job.rows, job.rowWidth), (n) => {
        bytes += n;
        sincePause += n;
        if (sincePause >= job.pauseEvery) {
          sincePause = 0;
          return sleep(job.pauseMs);
        }
      });
      const ms = now() - t0;
      sample();
      const want = copyBytes(job.rows, job.rowWidth);
      if (bytes !== want) throw new Error(`slow read received ${bytes} bytes, expected ${want}`);
      return { kind: 'slow-read', bytes, ms, idleRss, peakRss, hwm: vmHwm() };
    });
  } finally {
    clearInterval(sampler);
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* Idle connections held open                                                                      */
/* ---------------------------------------------------------------------------------------------- */

async function hold(job: HoldJob): Promise<{ kind: 'hold'; opened: number }> {
  const open: (() => Promise<void>)[] = [];
  try {
    // A few at a time: quicker than one by one, gentle enough for any server.
    const lanes = 4;
    let next = 0;
    await Promise.all(
      Array.from({ length: lanes }, async () => {
        while (next < job.count) {
          next++;
          const c = await openOnce(job.driver, job.target);
          open.push(c.close);
        }
      }),
    );
    process.stdout.write(`READY ${open.length}\n`);
    await new Promise<void>((resolve) => {
      process.stdin.on('data', () => {});
      process.stdin.on('end', resolve);
      process.stdin.on('close', resolve);
      process.stdin.resume();
    });
    return { kind: 'hold', opened: open.length };
  } finally {
    await Promise.all(open.map((c) => c().catch(() => {})));
  }
}

/* ---------------------------------------------------------------------------------------------- */

export async function runJob(job: Job): Promise<JobResult> {
  switch (job.kind) {
    case 'copy-out':
      return copyOut(job);
    case 'copy-in':
      return copyIn(job);
    case 'raw':
      return raw(job);
    case 'handshake':
      return handshake(job);
    case 'slow-read':
      return slowRead(job);
    case 'hold':
      return hold(job);
  }
}
