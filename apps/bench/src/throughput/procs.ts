/**
 * Child processes of the bench: every server and client it starts is tracked here and killed when
 * the bench ends, however it ends (normal exit, an exception, SIGINT/SIGTERM). Long-lived servers
 * also get a detached shell watchdog that kills them should this process die without running its
 * hooks (SIGKILL), so a CI job can never leave a server behind.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const live = new Set<ChildProcess>();
let hooked = false;

function killAllSync(): void {
  for (const c of live) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {}
    }
  }
  live.clear();
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAllSync);
  // Not SIGHUP: a run started with nohup must survive its terminal (a handler would undo nohup).
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      killAllSync();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

const WATCHDOG = `
parent=$1; child=$2
while kill -0 "$parent" 2>/dev/null; do
  kill -0 "$child" 2>/dev/null || exit 0
  sleep 1
done
kill -TERM "$child" 2>/dev/null; sleep 2; kill -KILL "$child" 2>/dev/null
exit 0`;

/** Kills `pid` once this process is gone (even after SIGKILL). */
export function watchdog(pid: number): void {
  const w = spawn('sh', ['-c', WATCHDOG, 'bench-watchdog', String(process.pid), String(pid)], {
    detached: true,
    stdio: 'ignore',
  });
  w.on('error', () => {});
  w.unref();
}

/** Spawns a tracked child (killed at exit). */
export function track(cmd: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  hook();
  const c = spawn(cmd, args, options);
  live.add(c);
  c.on('exit', () => live.delete(c));
  c.on('error', () => live.delete(c));
  return c;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. */
export function stop(c: ChildProcess, graceMs = 3000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
    c.once('exit', () => {
      clearTimeout(t);
      live.delete(c);
      resolve();
    });
    c.kill('SIGTERM');
  });
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to completion (tracked, killed after `timeoutMs`). */
export function run(
  cmd: string,
  args: readonly string[],
  options: SpawnOptions & { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  const { timeoutMs = 600_000, input, ...spawnOptions } = options;
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = track(cmd, args, { ...spawnOptions, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    c.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d.length > 100_000 ? d.slice(-100_000) : d;
      if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
    });
    const timer = setTimeout(() => {
      stderr += `\n[bench] killed after ${timeoutMs} ms`;
      c.kill('SIGKILL');
    }, timeoutMs);
    c.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    c.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
    c.stdin!.on('error', () => {});
    c.stdin!.end(input ?? '');
  });
}

/** Resolves with the first stdout line matching `re` (rejects on exit or timeout). */
export function waitForLine(
  c: ChildProcess,
  re: RegExp,
  timeoutMs: number,
  what: string,
): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const onErr = (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    };
    const done = (f: () => void) => {
      clearTimeout(timer);
      c.stdout?.off('data', onData);
      c.stderr?.off('data', onErr);
      c.off('exit', onExit);
      f();
    };
    const onData = (d: Buffer) => {
      buf += d.toString();
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl < 0) break;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = re.exec(line);
        if (m) return done(() => resolve(m));
      }
    };
    const onExit = (code: number | null) =>
      done(() => reject(new Error(`${what} exited (code ${code}) before it was ready: ${err.trim()}`)));
    const timer = setTimeout(
      () => done(() => reject(new Error(`${what} was not ready after ${timeoutMs} ms: ${err.trim()}`))),
      timeoutMs,
    );
    c.stdout?.on('data', onData);
    c.stderr?.on('data', onErr);
    c.on('exit', onExit);
  });
}

/** Resident set size of a process, in bytes (Linux /proc), or null. */
export function rssOf(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) a process has used so far (Linux /proc, 100 Hz ticks), or null. */
export function cpuSecondsOf(pid: number): number | null {
  try {
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime (fields 14 and 15)
  } catch {
    return null;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
