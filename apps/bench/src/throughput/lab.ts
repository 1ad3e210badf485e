/**
 * The servers a bench run talks to, all on loopback and all with the same certificate (an EC P-256
 * key signed by the throwaway CA that `pgconn serve --tls-dir` generates), so every TLS figure uses
 * the same key exchange, signature and cipher:
 *
 * - `pgconn serve` (the built CLI), SCRAM-SHA-256, TLS optional, direct TLS accepted: COPY source and sink;
 * - PostgreSQL 15 and 18 from @pgconn/testkit, an UNLOGGED table `t (x text)` for COPY FROM;
 * - the raw socket server (ceiling), pg-gateway, and PgBouncer (when installed) in front of PostgreSQL 18.
 *
 * Every process is tracked (procs.ts) and stopped by `close()`, at exit, or by a watchdog.
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PgServer, PgVersion } from '@pgconn/testkit';
import type { PgTarget } from './jobs.ts';
import { rssOf, sleep, stop, track, waitForLine, watchdog } from './procs.ts';

export const BENCH_USER = 'bench';
export const BENCH_PASSWORD = 'bench';
/** Trust-authenticated role for the plaintext+trust handshake. */
export const TRUST_USER = 'trustuser';
/** The role PgBouncer logs into PostgreSQL with (trust), whatever the client's role. */
const POOL_USER = 'pooled';

/** The repository root (the directory whose package.json declares the workspaces). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && /"workspaces"/.test(readFileSync(pkg, 'utf8'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('repository root not found');
    dir = up;
  }
}

export interface Certs {
  ca: string;
  cert: string;
  key: string;
}

export interface Service {
  name: string;
  host: string;
  port: number;
  pid: number;
  child: ChildProcess;
}

export interface Unavailable {
  unavailable: string;
}

export const isUnavailable = (x: unknown): x is Unavailable =>
  typeof x === 'object' && x !== null && 'unavailable' in x;

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

const which = (cmd: string): string | null => {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
};

/** A helper process once it prints `listening on HOST:PORT` (its stdout is drained from then on). */
async function listeningOn(child: ChildProcess, name: string, timeoutMs: number): Promise<Service> {
  const m = await waitForLine(child, /^listening on (.+):(\d+)$/, timeoutMs, name);
  child.stdout!.resume();
  return { name, host: m[1]!, port: Number(m[2]), pid: child.pid!, child };
}

export class Lab {
  readonly root = repoRoot();
  readonly dir: string;
  readonly distDir: string;
  certs!: Certs;
  serve: Service | null = null;
  raw: { plainPort: number; tlsPort: number; child: ChildProcess } | null = null;
  gateway: Service | Unavailable | null = null;
  pgbouncer: Service | Unavailable | null = null;
  readonly pg = new Map<PgVersion, PgServer | Unavailable>();

  constructor(distDir?: string) {
    this.dir = mkdtempSync(join(tmpdir(), 'pgconn-bench-'));
    chmodSync(this.dir, 0o755);
    this.distDir = distDir ?? join(this.root, 'apps', 'bench', 'dist');
  }

  private logFd(name: string): number {
    return openSync(join(this.dir, name), 'a');
  }

  /**
   * `pgconn serve` from the built CLI, run by the runtime's own binary (not through `--runtime`, whose
   * Node parent would stand between the pid and the server's RSS); its --tls-dir certificate
   * becomes every server's certificate. `register: false` leaves `this.serve` alone (a server for one
   * measurement, stopped by its caller).
   */
  async startServe(
    runtime: 'node' | 'bun' | 'deno' = 'node',
    register = runtime === 'node',
  ): Promise<Service> {
    const bin = join(this.root, 'packages', 'cli', 'dist', 'bin.js');
    if (!existsSync(bin)) throw new Error(`${bin} is missing: build the CLI first (npm run build)`);
    const tlsDir = join(this.dir, 'tls');
    // The first server generates the CA and certificate; later ones serve the same files (a second
    // --tls-dir would replace the CA every other server's clients verify against).
    const tlsArgs = this.certs
      ? ['--tls-cert', this.certs.cert, '--tls-key', this.certs.key]
      : ['--tls-dir', tlsDir];
    // --log connections: a line when a session starts and one when it ends, what PgBouncer's defaults
    // (log_connections, log_disconnections) log; every step of every handshake would be ~10 lines.
    const args = [bin, 'serve', '--port', '0', ...tlsArgs, '--direct-tls', '--log', 'connections'];
    args.push('--auth', 'scram-sha-256', '--user', BENCH_USER, '--password', BENCH_PASSWORD);
    const [cmd, ...pre] = this.runtimeCommand(runtime);
    const logFile = join(this.dir, `serve-${runtime}.log`);
    const child = track(cmd!, [...pre, ...args], { stdio: ['ignore', 'pipe', openSync(logFile, 'a')] });
    const m = await waitForLine(child, /^listening on (.+):(\d+)$/, 30_000, 'pgconn serve').catch(
      (e: Error) => {
        const said = existsSync(logFile)
          ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join(' / ')
          : '';
        throw new Error(said || e.message);
      },
    );
    child.stdout!.resume();
    watchdog(child.pid!);
    this.certs ??= {
      ca: join(tlsDir, 'ca.crt'),
      cert: join(tlsDir, 'server.crt'),
      key: join(tlsDir, 'server.key'),
    };
    const s: Service = {
      name: 'pgconn serve',
      host: m[1]!.replace(/^\[|\]$/g, ''),
      port: Number(m[2]),
      pid: child.pid!,
      child,
    };
    if (register) this.serve = s;
    return s;
  }

  /** PostgreSQL `version` with TLS (our certificate), SCRAM role `bench`, trust role, UNLOGGED table t. */
  async startPostgres(version: PgVersion): Promise<PgServer | Unavailable> {
    let testkit: typeof import('@pgconn/testkit');
    try {
      testkit = await import('@pgconn/testkit');
    } catch (e) {
      const u = { unavailable: `@pgconn/testkit not loadable: ${(e as Error).message}` };
      this.pg.set(version, u);
      return u;
    }
    const { hbaLine, startPostgres } = testkit;
    try {
      const server = await startPostgres({
        version,
        ssl: { cert: this.certs.cert, key: this.certs.key },
        hba: [
          hbaLine('host', TRUST_USER, 'trust'),
          hbaLine('host', POOL_USER, 'trust'),
          hbaLine('host', BENCH_USER, 'scram-sha-256'),
        ],
        users: [
          { name: BENCH_USER, password: BENCH_PASSWORD, passwordEncryption: 'scram-sha-256' },
          { name: TRUST_USER },
          { name: POOL_USER },
        ],
        settings: {
          // Connection logging costs every handshake a log line: PgBouncer and pgconn serve log too,
          // but a client benchmark against PostgreSQL should not measure the server's logging.
          log_connections: false,
          max_connections: 200,
          shared_buffers: '128MB',
          max_wal_size: '4GB',
          checkpoint_timeout: '30min',
        },
      });
      await server.sql(
        `CREATE UNLOGGED TABLE t (x text); ALTER TABLE t OWNER TO ${BENCH_USER}; ` +
          `GRANT ALL ON SCHEMA public TO ${BENCH_USER}`,
      );
      this.pg.set(version, server);
      return server;
    } catch (e) {
      const u = {
        unavailable: `PostgreSQL ${version} did not start: ${(e as Error).message.split('\n')[0]}`,
      };
      this.pg.set(version, u);
      return u;
    }
  }

  /** The raw socket server for the ceiling (Node, a process of its own). */
  async startRaw(): Promise<{ plainPort: number; tlsPort: number }> {
    const child = track(
      process.execPath,
      [join(this.distDir, 'throughput-rawserver.js'), '--cert', this.certs.cert, '--key', this.certs.key],
      { stdio: ['pipe', 'pipe', this.logFd('rawserver.log')] },
    );
    const m = await waitForLine(child, /^listening (\d+) (\d+)$/, 15_000, 'raw socket server');
    child.stdout!.resume();
    this.raw = { plainPort: Number(m[1]), tlsPort: Number(m[2]), child };
    return this.raw;
  }

  /** A loopback proxy adding `delayMs` each way in front of `targetPort` (throughput-delayproxy.js). */
  async startDelayProxy(targetPort: number, delayMs: number): Promise<{ port: number; child: ChildProcess }> {
    const child = track(
      process.execPath,
      [
        join(this.distDir, 'throughput-delayproxy.js'),
        '--target',
        String(targetPort),
        '--delay-ms',
        String(delayMs),
      ],
      { stdio: ['pipe', 'pipe', this.logFd('delayproxy.log')] },
    );
    const m = await waitForLine(child, /^listening (\d+)$/, 15_000, 'delay proxy');
    child.stdout!.resume();
    return { port: Number(m[1]), child };
  }

  /** The command that runs a script on `runtime` (its binary from node_modules for Bun and Deno). */
  private runtimeCommand(runtime: 'node' | 'bun' | 'deno'): string[] {
    if (runtime === 'node') return [process.execPath];
    const runner = join(this.root, 'node_modules', '.bin', runtime);
    if (!existsSync(runner)) throw new Error(`${runtime} binary not found (${runner})`);
    return runtime === 'bun' ? [runner] : [runner, 'run', '-A'];
  }

  /**
   * The runtime floor (throughput-floorserver.ts): the runtime's own TLS server speaking just enough
   * of the protocol for pgbench, with no pgconn code, on our certificate. Stopped by its caller.
   */
  async startFloor(runtime: 'node' | 'bun' | 'deno'): Promise<Service> {
    const [cmd, ...pre] = this.runtimeCommand(runtime);
    const script = join(this.distDir, 'throughput-floorserver.js');
    const child = track(cmd!, [...pre, script, '--cert', this.certs.cert, '--key', this.certs.key], {
      stdio: ['pipe', 'pipe', this.logFd(`floor-${runtime}.log`)],
    });
    return listeningOn(child, 'runtime floor', 30_000);
  }

  async startGateway(): Promise<Service | Unavailable> {
    try {
      this.gateway = await this.spawnGateway();
    } catch (e) {
      this.gateway = { unavailable: `pg-gateway did not start: ${(e as Error).message}` };
    }
    return this.gateway;
  }

  /** One pg-gateway process (a fresh one per call); its caller stops it. */
  async spawnGateway(): Promise<Service> {
    const child = track(
      process.execPath,
      [
        join(this.distDir, 'throughput-gateway.js'),
        '--cert',
        this.certs.cert,
        '--key',
        this.certs.key,
        '--user',
        BENCH_USER,
        '--password',
        BENCH_PASSWORD,
      ],
      { stdio: ['pipe', 'pipe', this.logFd('gateway.log')] },
    );
    return listeningOn(child, 'pg-gateway', 15_000);
  }

  /**
   * PgBouncer (Debian's `pgbouncer`, 1.18) in front of PostgreSQL 18: client_tls_sslmode=require,
   * auth_type=scram-sha-256 with role bench's SCRAM secret copied from pg_authid; it logs into
   * PostgreSQL as a trust role. Runs as the `postgres` OS user (PgBouncer refuses root).
   */
  async startPgBouncer(pg: PgServer | Unavailable | undefined): Promise<Service | Unavailable> {
    const bin = which('pgbouncer');
    if (!bin) {
      this.pgbouncer = { unavailable: 'PgBouncer is not installed (Debian: apt-get install -y pgbouncer)' };
      return this.pgbouncer;
    }
    if (!pg || isUnavailable(pg)) {
      this.pgbouncer = { unavailable: 'PgBouncer needs PostgreSQL 18, which is not available' };
      return this.pgbouncer;
    }
    try {
      this.pgbouncer = await this.spawnPgBouncer(pg);
    } catch (e) {
      this.pgbouncer = { unavailable: `PgBouncer did not start: ${(e as Error).message}` };
    }
    return this.pgbouncer;
  }

  /** One PgBouncer process as startPgBouncer describes (a fresh one per call); its caller stops it. */
  async spawnPgBouncer(pg: PgServer): Promise<Service> {
    const bin = which('pgbouncer');
    if (!bin) throw new Error('PgBouncer is not installed');
    const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
    const secret = await pg.sql(`SELECT rolpassword FROM pg_authid WHERE rolname = '${BENCH_USER}'`);
    const d = join(this.dir, 'pgbouncer');
    mkdirSync(d, { recursive: true });
    const port = await freePort();
    const copy = (from: string, name: string, mode: number) => {
      const to = join(d, name);
      writeFileSync(to, readFileSync(from));
      chmodSync(to, mode);
      return to;
    };
    const cert = copy(this.certs.cert, 'server.crt', 0o644);
    const key = copy(this.certs.key, 'server.key', 0o600);
    writeFileSync(join(d, 'userlist.txt'), `"${BENCH_USER}" "${secret}"\n`);
    const ini = join(d, 'pgbouncer.ini');
    writeFileSync(
      ini,
      [
        '[databases]',
        `postgres = host=127.0.0.1 port=${pg.port} dbname=postgres user=${POOL_USER}`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        'unix_socket_dir =',
        `logfile = ${join(d, 'pgbouncer.log')}`,
        'auth_type = scram-sha-256',
        `auth_file = ${join(d, 'userlist.txt')}`,
        'client_tls_sslmode = require',
        `client_tls_cert_file = ${cert}`,
        `client_tls_key_file = ${key}`,
        'pool_mode = session',
        'max_client_conn = 5000',
        'default_pool_size = 20',
        'ignore_startup_parameters = extra_float_digits,options',
      ].join('\n'),
    );
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
    const asRoot = process.getuid?.() === 0;
    if (asRoot)
      for (const f of ['', 'server.crt', 'server.key', 'userlist.txt', 'pgbouncer.ini'])
        chownSync(join(d, f), uid, gid);
    const child = track(bin, [ini], {
      stdio: ['ignore', 'ignore', this.logFd('pgbouncer.stderr')],
      ...(asRoot ? { uid, gid } : {}),
    });
    watchdog(child.pid!);
    const deadline = Date.now() + 15_000;
    while (!(await tcpOpen(port))) {
      if (child.exitCode !== null || Date.now() > deadline) {
        const log = existsSync(join(d, 'pgbouncer.log'))
          ? readFileSync(join(d, 'pgbouncer.log'), 'utf8')
          : '';
        throw new Error(`not listening (exit ${child.exitCode}): ${log.split('\n').slice(-3).join(' / ')}`);
      }
      await sleep(50);
    }
    return { name: version, host: '127.0.0.1', port, pid: child.pid!, child };
  }

  /** A PgTarget for the given server. */
  target(port: number, tlsMode: PgTarget['tls'], user = BENCH_USER): PgTarget {
    return {
      host: '127.0.0.1',
      port,
      user,
      password: user === BENCH_USER ? BENCH_PASSWORD : '',
      database: 'postgres',
      tls: tlsMode,
      ca: tlsMode === 'off' ? null : this.certs.ca,
    };
  }

  rss(pid: number): number | null {
    return rssOf(pid);
  }

  async close(): Promise<void> {
    const children = [this.serve?.child, this.raw?.child];
    for (const s of [this.gateway, this.pgbouncer]) if (s && !isUnavailable(s)) children.push(s.child);
    await Promise.all(children.map((c) => (c ? stop(c) : undefined)));
    await Promise.all(
      [...this.pg.values()].map((s) => (isUnavailable(s) ? undefined : s.stop().catch(() => {}))),
    );
    rmSync(this.dir, { recursive: true, force: true });
  }

  path(...parts: string[]): string {
    return resolve(this.dir, ...parts);
  }
}
