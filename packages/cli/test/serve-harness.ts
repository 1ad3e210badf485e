/**
 * Shared by the serve-*.test.ts files: spawns the BUILT `pgconn serve` on a free port (`--port 0`,
 * the port parsed from `listening on 127.0.0.1:PORT`), runs other programs with a clean environment,
 * and speaks raw bytes to a server.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end with exactly `env` (no PG* or anything else from this machine). */
export function run(
  file: string,
  args: readonly string[],
  env: Record<string, string>,
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 15_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // EPIPE when the program exits before reading its input is expected; its exit status tells.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs the built CLI with a minimal environment. */
export function cli(args: readonly string[], env: Record<string, string> = {}): Promise<RunResult> {
  return run(process.execPath, [BIN, ...args], {
    PATH: process.env.PATH ?? '',
    HOME: '/nonexistent',
    ...env,
  });
}

export interface Served {
  port: number;
  child: ChildProcess;
  stdout: () => string;
  /** Everything the server logged so far. */
  log: () => string;
  /** Log lines written after `mark` (a length of log()). */
  logSince: (mark: number) => string;
  /** Resolves with the exit status once the process has ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (or the given signal), then the exit status; SIGKILL after 5 s. */
  stop: (signal?: NodeJS.Signals) => Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started = new Set<Served>();

/** Starts `pgconn serve --port 0 …args` and waits for its `listening on` line. */
export function serve(args: readonly string[]): Promise<Served> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: '/nonexistent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`pgconn serve did not start:\n${out}\n${err}`));
    }, 15_000);
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^listening on 127\.0\.0\.1:(\d+)$/m.exec(out);
      if (!m) return;
      clearTimeout(timer);
      const served: Served = {
        port: Number(m[1]),
        child,
        stdout: () => out,
        log: () => err,
        logSince: (mark) => err.slice(mark),
        exited,
        stop: async (signal = 'SIGTERM') => {
          started.delete(served);
          if (child.exitCode === null && child.signalCode === null) {
            child.kill(signal);
            const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
            const status = await exited;
            clearTimeout(kill);
            return status;
          }
          return exited;
        },
      };
      started.add(served);
      resolve(served);
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`pgconn serve exited (${code ?? signal}) before listening:\n${out}\n${err}`));
    });
  });
}

/** Open file descriptors of a server process (listening socket, stdio, one per session …). */
export const openFds = (s: Served): number => readdirSync(`/proc/${s.child.pid}/fd`).length;

/** Stops every server this file started (afterAll). */
export async function stopAllServers(): Promise<void> {
  await Promise.all([...started].map((s) => s.stop()));
}

/** Waits until `check()` holds (polling), or fails after `ms`. */
export async function eventually(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function tempDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A raw TCP client: everything received, and when the server closed. */
export interface RawPeer {
  socket: Socket;
  received: () => Buffer;
  isClosed: () => boolean;
  /** Resolves with ms since connect when the connection ends; rejects after `timeoutMs`. */
  closed: (timeoutMs?: number) => Promise<number>;
  /** Resolves once at least `n` bytes arrived (or the connection ended). */
  bytes: (n: number, timeoutMs?: number) => Promise<Buffer>;
}

export function rawConnect(port: number): Promise<RawPeer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const t0 = Date.now();
    const chunks: Buffer[] = [];
    let endedAt: number | null = null;
    const listeners = new Set<() => void>();
    const notify = () => {
      for (const l of [...listeners]) l();
    };
    socket.on('data', (d) => {
      chunks.push(d);
      notify();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      endedAt = Date.now() - t0;
      notify();
    });
    const waitFor = <T>(ready: () => T | undefined, timeoutMs: number, what: string): Promise<T> =>
      new Promise((res, rej) => {
        const check = () => {
          const v = ready();
          if (v === undefined) return;
          listeners.delete(check);
          clearTimeout(timer);
          res(v);
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          rej(new Error(`timed out waiting for ${what}; received ${Buffer.concat(chunks).toString('hex')}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve({
        socket,
        received: () => Buffer.concat(chunks),
        isClosed: () => endedAt !== null,
        closed: (timeoutMs = 5000) => waitFor(() => endedAt ?? undefined, timeoutMs, 'the server to close'),
        bytes: (n, timeoutMs = 5000) =>
          waitFor(
            () => {
              const all = Buffer.concat(chunks);
              return all.length >= n || endedAt !== null ? all : undefined;
            },
            timeoutMs,
            `${n} bytes`,
          ),
      });
    });
    socket.once('error', reject);
  });
}

/** An untyped startup-phase packet: length, then the body. */
export function packet(body: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length + 4);
  return Buffer.concat([len, body]);
}

export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

export const SSL_REQUEST = packet(u32(80877103));
export const GSSENC_REQUEST = packet(u32(80877104));

export function startupMessage(params: Record<string, string>, version = 0x0003_0000): Buffer {
  const parts = [u32(version)];
  for (const [k, v] of Object.entries(params)) parts.push(Buffer.from(`${k}\0${v}\0`));
  parts.push(Buffer.from([0]));
  return packet(Buffer.concat(parts));
}

export function cancelRequest(processId: number, key: Buffer): Buffer {
  return packet(Buffer.concat([u32(80877102), u32(processId), key]));
}

/** Backend message type bytes of a stream of typed messages (after any single-byte replies). */
export function messageTypes(bytes: Buffer, from = 0): string[] {
  const out: string[] = [];
  let i = from;
  while (i + 5 <= bytes.length) {
    out.push(String.fromCharCode(bytes[i]!));
    i += 1 + bytes.readUInt32BE(i + 1);
  }
  return out;
}

/** A typed frontend message: type byte, length, body. */
export function typed(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([Buffer.from(type), u32(body.length + 4), body]);
}

export const cstr = (s: string): Buffer => Buffer.from(`${s}\0`);

/** The fields of the ErrorResponse (or NoticeResponse) at `at`, by field code. */
export function errorFields(bytes: Buffer, at = 0): Record<string, string> {
  return noticeFields(bytes.subarray(at + 5, at + 1 + bytes.readUInt32BE(at + 1)));
}

/** The fields of an ErrorResponse / NoticeResponse body. */
export function noticeFields(body: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  for (let i = 0; i < body.length && body[i] !== 0; ) {
    const zero = body.indexOf(0, i + 1);
    fields[String.fromCharCode(body[i]!)] = body.subarray(i + 1, zero).toString();
    i = zero + 1;
  }
  return fields;
}

export interface Message {
  type: string;
  body: Buffer;
  at: number;
}

/** Splits typed backend messages starting at `from`. */
export function messages(bytes: Buffer, from = 0): Message[] {
  const out: Message[] = [];
  let i = from;
  while (i + 5 <= bytes.length) {
    const len = bytes.readUInt32BE(i + 1);
    if (i + 1 + len > bytes.length) break;
    out.push({ type: String.fromCharCode(bytes[i]!), body: bytes.subarray(i + 5, i + 1 + len), at: i });
    i += 1 + len;
  }
  return out;
}

/**
 * A plaintext session with a trust server, spoken in raw bytes: `exchange` sends frontend messages
 * and returns the backend messages up to and including the next ReadyForQuery.
 */
export async function rawSession(port: number): Promise<{
  peer: RawPeer;
  startup: Message[];
  exchange: (...frontend: Buffer[]) => Promise<Message[]>;
}> {
  const peer = await rawConnect(port);
  let offset = 0;
  const untilReady = async (): Promise<Message[]> => {
    const end = Date.now() + 5000;
    for (;;) {
      const all = messages(peer.received(), offset);
      const z = all.findIndex((m) => m.type === 'Z');
      if (z !== -1) {
        const got = all.slice(0, z + 1);
        offset = got[z]!.at + 5 + got[z]!.body.length;
        return got;
      }
      if (Date.now() > end || peer.isClosed())
        throw new Error(`no ReadyForQuery: ${all.map((m) => m.type).join('')}`);
      await peer.bytes(peer.received().length + 1, Math.max(1, end - Date.now())).catch(() => {});
    }
  };
  peer.socket.write(startupMessage({ user: 'postgres', database: 'postgres' }));
  const startup = await untilReady();
  return {
    peer,
    startup,
    exchange: (...frontend) => {
      peer.socket.write(Buffer.concat(frontend));
      return untilReady();
    },
  };
}
