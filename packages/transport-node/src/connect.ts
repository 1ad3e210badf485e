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
  type ResolvedOptions,
  type ResolveInput,
  resolveOptions,
} from '@pgconn/core';
import { nodeTransport } from './transport.ts';

const readText = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
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
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    user = env.USER;
  }
  const input: ResolveInput = {
    env,
    serviceFileText: readText,
    pgpassText: (path) => readText(path),
  };
  if (conninfo !== undefined) input.conninfo = conninfo;
  if (options.params) input.params = options.params;
  if (home !== undefined) input.homeDir = home;
  if (user !== undefined) input.currentUser = user;
  const first = resolveOptions(input);
  // The password file is ignored when group/world can read it: that needs its mode.
  if (first.passfile) {
    try {
      input.pgpassMode = statSync(first.passfile).mode & 0o777;
    } catch {
      // no file: nothing to check
    }
    if (input.pgpassMode !== undefined) return resolveOptions(input);
  }
  return first;
}

/** Connects like libpq's PQconnectdb(conninfo) on Node. */
export async function connect(conninfo?: string, options: NodeConnectOptions = {}): Promise<Connection> {
  const resolved = resolveNodeOptions(conninfo, options);
  for (const w of resolved.warnings) process.emitWarning(w);
  return coreConnect(nodeTransport, resolved, options);
}
