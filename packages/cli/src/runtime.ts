/**
 * `--runtime node|bun|deno`: the CLI runs on each runtime with that runtime's own transport. Started
 * from one runtime and asked for another, it runs itself again under the other one (the binary from
 * node_modules/.bin above this file, else PATH), with the same arguments, forwarding SIGINT/SIGTERM
 * and passing its exit code back.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OptionError, type Transport } from '@pgconn/core';

export type RuntimeName = 'node' | 'bun' | 'deno';

const g = globalThis as { Bun?: unknown; Deno?: unknown };
/** The runtime this process runs on. */
export const CURRENT_RUNTIME: RuntimeName =
  g.Bun !== undefined ? 'bun' : g.Deno !== undefined ? 'deno' : 'node';

/** `node 20.20.2`, `bun 1.4.5`, `deno 2.9.6`. */
export function runtimeVersion(): string {
  const v = process.versions as Record<string, string | undefined>;
  return `${CURRENT_RUNTIME} ${v[CURRENT_RUNTIME] ?? v.node}`;
}

/** The transport of the runtime this process runs on; each package is loaded only there. */
export async function currentTransport(): Promise<Transport> {
  switch (CURRENT_RUNTIME) {
    case 'bun':
      return (await import('@pgconn/transport-bun')).bunTransport;
    case 'deno':
      return (await import('@pgconn/transport-deno')).denoTransport;
    default:
      return (await import('@pgconn/transport-node')).nodeTransport;
  }
}

/** The runtime's binary: node_modules/.bin in this file's directory or above, then PATH. */
function findRuntimeBinary(runtime: RuntimeName): string | null {
  if (runtime === CURRENT_RUNTIME) return process.execPath;
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const bin = join(dir, 'node_modules', '.bin', runtime);
    if (existsSync(bin)) return bin;
    if (dirname(dir) === dir) break;
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, runtime))) return join(dir, runtime);
  }
  return null;
}

/**
 * Runs this CLI (`bin.js`, the entry that loaded this module) again under `runtime` with `argv`.
 * Resolves with the child's exit code (1 when a signal ended it). An OptionError when the binary is
 * not to be found.
 */
export function runUnder(runtime: RuntimeName, argv: readonly string[]): Promise<number> {
  const bin = findRuntimeBinary(runtime);
  if (!bin) {
    throw new OptionError(`--runtime ${runtime}: no ${runtime} binary in node_modules/.bin or on PATH`);
  }
  const entry = process.argv[1];
  if (!entry) throw new OptionError(`--runtime ${runtime}: cannot tell which script to run again`);
  // Deno needs its permissions spelled out: the CLI reads files, opens sockets and reads env.
  const args = runtime === 'deno' ? ['run', '-A', entry, ...argv] : [entry, ...argv];
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: 'inherit' });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    const release = () => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
    };
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.once('error', (e) => {
      release();
      reject(new OptionError(`--runtime ${runtime}: could not start ${bin}: ${e.message}`));
    });
    child.once('exit', (code) => {
      release();
      resolve(code ?? 1);
    });
  });
}
