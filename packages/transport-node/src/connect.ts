/**
 * libpq-style entry point for Node: conninfo or URI, then PG* environment variables, the service
 * file and .pgpass (read here, since core reads no files), then the multi-host connect in core.
 */
import { readFileSync, statSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import {
  type ClientConnectOptions,
  type Connection,
  connect as coreConnect,
  type PgpassFile,
  type ResolvedOptions,
  type ResolveInput,
  resolveOptions,
} from '@pgconn/core';
import { nodeTransport } from './transport.ts';

// A missing file is the common case (no ~/.pgpass): stat with throwIfNoEntry false finds that without
// the ENOENT Error readFileSync would build, stack and all (~40 µs per connect under perf).
const readText = (path: string): string | null => {
  try {
    return statSync(path, { throwIfNoEntry: false }) ? readFileSync(path, 'utf8') : null;
  } catch {
    return null;
  }
};

/** The password file's text with its mode (libpq's passwordFromFile: one stat, then the read). */
const readPgpass = (path: string): PgpassFile | null => {
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st) return null;
    if (!st.isFile()) return { text: '', isFile: false };
    return { text: readFileSync(path, 'utf8'), mode: st.mode & 0o777 };
  } catch {
    return null;
  }
};

/** userInfo() reads the password database (/etc/passwd): only when no user is given. */
const osUser = (env: Record<string, string | undefined>) => (): string | undefined => {
  try {
    return userInfo().username;
  } catch {
    return env.USER;
  }
};

/** `onStep` and `scramMaxIterations` as in core's ConnectOptions. */
export interface NodeConnectOptions extends ClientConnectOptions {
  /** Explicit keyword/value pairs; they override the conninfo string. */
  params?: Record<string, string | undefined>;
  /** Environment to read PG* variables from; default process.env. */
  env?: Record<string, string | undefined>;
}

/** Resolves options exactly as the Node entry points do (for tools that show them, like `pgconn probe`). */
export function resolveNodeOptions(conninfo?: string, options: NodeConnectOptions = {}): ResolvedOptions {
  const env = options.env ?? process.env;
  let home: string | undefined;
  try {
    home = env.HOME ?? homedir();
  } catch {
    home = undefined;
  }
  const input: ResolveInput = {
    env,
    serviceFileText: readText,
    pgpassText: readPgpass,
    currentUser: osUser(env),
  };
  if (conninfo !== undefined) input.conninfo = conninfo;
  if (options.params) input.params = options.params;
  if (home !== undefined) input.homeDir = home;
  return resolveOptions(input);
}

/** Connects like libpq's PQconnectdb(conninfo) on Node. */
export async function connect(conninfo?: string, options: NodeConnectOptions = {}): Promise<Connection> {
  const resolved = resolveNodeOptions(conninfo, options);
  for (const w of resolved.warnings) process.emitWarning(w);
  return coreConnect(nodeTransport, resolved, options);
}
