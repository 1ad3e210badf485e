/**
 * libpq-style entry point for Deno: conninfo or URI, then PG* environment variables, the service
 * file and .pgpass (read here, since core reads no files), then the multi-host connect in core.
 *
 * Permissions: without --allow-env pass `env` explicitly (an environment that cannot be read is an
 * error, not an empty one: PGSSLMODE=verify-full must never be dropped silently); files are read
 * with --allow-read; Deno.uid() (key-file ownership rule) needs --allow-sys=uid.
 */
import {
  type ClientConnectOptions,
  type Connection,
  connect as coreConnect,
  type PgpassFile,
  type ResolvedOptions,
  type ResolveInput,
  resolveOptions,
} from '@pgconn/core';
import { isMissing } from './errors.ts';
import { denoTransport } from './transport.ts';

const readText = (path: string): string | null => {
  try {
    return Deno.readTextFileSync(path);
  } catch (e) {
    if (isMissing(e)) return null;
    throw e;
  }
};

/**
 * The password file's text with its mode (libpq's passwordFromFile: one stat, then the read). A
 * missing file costs one NotFound (~10 µs on Deno), not two (read, then stat for the mode).
 */
const readPgpass = (path: string): PgpassFile | null => {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(path);
  } catch (e) {
    if (isMissing(e)) return null;
    throw e;
  }
  if (!st.isFile) return { text: '', isFile: false };
  const text = readText(path);
  if (text === null) return null;
  return st.mode === null ? { text } : { text, mode: st.mode & 0o777 };
};

/** `onStep` and `scramMaxIterations` as in core's ConnectOptions. */
export interface DenoConnectOptions extends ClientConnectOptions {
  /** Explicit keyword/value pairs; they override the conninfo string. */
  params?: Record<string, string | undefined>;
  /** Environment to read PG* variables from; default Deno.env (needs --allow-env). */
  env?: Record<string, string | undefined>;
}

/** Resolves options exactly as `connect` does (for tools that show them). */
export function resolveDenoOptions(conninfo?: string, options: DenoConnectOptions = {}): ResolvedOptions {
  const env = options.env ?? Deno.env.toObject();
  const input: ResolveInput = { env, serviceFileText: readText, pgpassText: readPgpass };
  const home = env.HOME ?? env.USERPROFILE;
  const user = env.USER ?? env.LOGNAME ?? env.USERNAME;
  if (conninfo !== undefined) input.conninfo = conninfo;
  if (options.params) input.params = options.params;
  if (home !== undefined) input.homeDir = home;
  if (user !== undefined) input.currentUser = user;
  return resolveOptions(input);
}

/** Connects like libpq's PQconnectdb(conninfo) on Deno. */
export async function connect(conninfo?: string, options: DenoConnectOptions = {}): Promise<Connection> {
  const resolved = resolveDenoOptions(conninfo, options);
  for (const w of resolved.warnings) console.warn(w);
  return coreConnect(denoTransport, resolved, options);
}
