/**
 * `pgconn serve`: pgconn's server side as a small PostgreSQL look-alike for demos, tests and the
 * bench. Prints `listening on HOST:PORT` once it accepts connections and runs until SIGINT or
 * SIGTERM (exit 0). Exit codes: 1 when it cannot start (port in use, unreadable certificate,
 * openssl missing for --tls-dir), 2 for invalid options.
 */

import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { OptionError } from '@pgconn/core';
import { CURRENT_RUNTIME, type RuntimeName, runtimeVersion, runUnder } from '../runtime.ts';
import { generateCertificates } from '../serve/certs.ts';
import { type AuthMethod, type LogLevel, type RunningServer, startServer } from '../serve/server.ts';

export type TlsMode = 'off' | 'optional' | 'required';

export interface ServeArgs {
  host: string;
  port: number;
  tls: TlsMode;
  tlsCert?: string;
  tlsKey?: string;
  tlsDir?: string;
  directTls: boolean;
  auth: AuthMethod;
  user: string;
  password: string;
  runtime: RuntimeName;
  /** Seconds a connection may take to authenticate (PostgreSQL's authentication_timeout). */
  authTimeout: number;
  log: LogLevel;
}

export const SERVE_USAGE = `usage: pgconn serve [--host 127.0.0.1] [--port 5432]
                    [--tls off|optional|required]     default: optional when a certificate is given
                    [--tls-cert FILE --tls-key FILE]  or --tls-dir DIR: generate a throwaway CA and a
                                                      server certificate into DIR (needs openssl)
                    [--direct-tls]                    also accept direct TLS (ALPN postgresql)
                    [--auth trust|password|md5|scram-sha-256]   default scram-sha-256
                    [--user NAME] [--password SECRET] default postgres / postgres
                    [--auth-timeout SECONDS]          default 60
                    [--log steps|connections]         default steps: every negotiation step;
                                                      connections: sessions started, ended, refused
                    [--runtime node|bun|deno]`;

const AUTH_METHODS: readonly AuthMethod[] = ['trust', 'password', 'md5', 'scram-sha-256'];
const TLS_MODES: readonly TlsMode[] = ['off', 'optional', 'required'];
const LOG_LEVELS: readonly LogLevel[] = ['steps', 'connections'];
const VALUED = new Set([
  '--host',
  '--port',
  '--tls',
  '--tls-cert',
  '--tls-key',
  '--tls-dir',
  '--auth',
  '--user',
  '--password',
  '--runtime',
  '--auth-timeout',
  '--log',
]);

const bad = (message: string): never => {
  throw new OptionError(`${message}\n${SERVE_USAGE}`);
};

export function parseServeArgs(argv: string[]): ServeArgs {
  const given = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    let value: string | undefined;
    const eq = a.indexOf('=');
    if (a.startsWith('--') && eq > 0) {
      value = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (VALUED.has(a)) {
      if (value === undefined) {
        value = argv[++i];
        if (value === undefined) bad(`option ${a} needs a value`);
      }
      given.set(a, value!);
    } else if (a === '--direct-tls') {
      if (value !== undefined) bad('option --direct-tls takes no value');
      given.set(a, true);
    } else if (a.startsWith('-')) bad(`unknown option "${a}"`);
    else bad(`unexpected argument "${a}"`);
  }
  const str = (name: string): string | undefined => {
    const v = given.get(name);
    return typeof v === 'string' ? v : undefined;
  };
  const nonEmpty = (name: string, fallback: string): string => {
    const v = str(name) ?? fallback;
    if (v === '') bad(`option ${name} must not be empty`);
    return v;
  };

  const portText = str('--port') ?? '5432';
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) bad(`invalid --port value: "${portText}"`);
  const timeoutText = str('--auth-timeout') ?? '60';
  const authTimeout = Number(timeoutText);
  if (!/^\d+(\.\d+)?$/.test(timeoutText) || authTimeout <= 0 || authTimeout > 600) {
    bad(`invalid --auth-timeout value: "${timeoutText}" (seconds, 1 to 600)`);
  }
  const log = str('--log') ?? 'steps';
  if (!LOG_LEVELS.includes(log as LogLevel)) bad(`invalid --log value: "${log}"`);
  const auth = str('--auth') ?? 'scram-sha-256';
  if (!AUTH_METHODS.includes(auth as AuthMethod)) bad(`invalid --auth value: "${auth}"`);
  // Default: the runtime this process runs on (`bun bin.js serve` serves on Bun).
  const runtime = str('--runtime') ?? CURRENT_RUNTIME;
  if (runtime !== 'node' && runtime !== 'bun' && runtime !== 'deno')
    bad(`invalid --runtime value: "${runtime}"`);

  const tlsCert = str('--tls-cert');
  const tlsKey = str('--tls-key');
  const tlsDir = str('--tls-dir');
  if ((tlsCert === undefined) !== (tlsKey === undefined)) bad('--tls-cert and --tls-key go together');
  if (tlsDir !== undefined && tlsCert !== undefined) bad('use either --tls-dir or --tls-cert/--tls-key');
  const haveCert = tlsDir !== undefined || tlsCert !== undefined;
  const tls = str('--tls') ?? (haveCert ? 'optional' : 'off');
  if (!TLS_MODES.includes(tls as TlsMode)) bad(`invalid --tls value: "${tls}"`);
  if (tls !== 'off' && !haveCert)
    bad(`--tls ${tls} needs a certificate: --tls-cert FILE --tls-key FILE, or --tls-dir DIR`);
  const directTls = given.get('--direct-tls') === true;
  if (directTls && tls === 'off')
    bad('--direct-tls needs TLS (a certificate, and --tls optional or required)');

  const args: ServeArgs = {
    host: nonEmpty('--host', '127.0.0.1'),
    port: Number(portText),
    tls: tls as TlsMode,
    directTls,
    auth: auth as AuthMethod,
    user: nonEmpty('--user', 'postgres'),
    password: nonEmpty('--password', 'postgres'),
    runtime: runtime as ServeArgs['runtime'],
    authTimeout,
    log: log as LogLevel,
  };
  if (tlsCert !== undefined) args.tlsCert = tlsCert;
  if (tlsKey !== undefined) args.tlsKey = tlsKey;
  if (tlsDir !== undefined) args.tlsDir = tlsDir;
  return args;
}

/** Loads (or generates) the certificate and key, and checks that they belong together. */
async function loadTls(
  args: ServeArgs,
  out: (line: string) => void,
): Promise<{ certPem: string; keyPem: string } | null> {
  if (args.tls === 'off') return null;
  let certPem: string;
  let keyPem: string;
  if (args.tlsDir !== undefined) {
    const g = await generateCertificates(args.tlsDir);
    out(`generated a throwaway CA and server certificate: ${g.ca} ${g.cert} ${g.key}`);
    ({ certPem, keyPem } = g);
  } else {
    const read = async (path: string, what: string) => {
      try {
        return await readFile(path, 'utf8');
      } catch (e) {
        throw new Error(`could not load ${what} "${path}": ${(e as Error).message}`);
      }
    };
    certPem = await read(args.tlsCert!, 'server certificate file');
    keyPem = await read(args.tlsKey!, 'private key file');
  }
  try {
    createSecureContext({ cert: certPem, key: keyPem });
  } catch (e) {
    throw new Error(`unusable server certificate or key: ${(e as Error).message}`);
  }
  return { certPem, keyPem };
}

const waitForSignal = (): Promise<NodeJS.Signals> =>
  new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });

export async function runServe(argv: string[]): Promise<number> {
  let args: ServeArgs;
  try {
    args = parseServeArgs(argv);
    if (args.runtime !== CURRENT_RUNTIME) return await runUnder(args.runtime, ['serve', ...argv]);
  } catch (e) {
    if (!(e instanceof OptionError)) throw e;
    process.stderr.write(`pgconn: ${e.message}\n`);
    return 2;
  }
  const stdout = (line: string) => process.stdout.write(`${line}\n`);
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  // Signals that arrive while starting still stop the server, once it is up.
  const signal = waitForSignal();
  let server: RunningServer;
  try {
    const tls = await loadTls(args, stdout);
    server = await startServer({
      host: args.host,
      port: args.port,
      tls: tls ? { ...tls, required: args.tls === 'required' } : null,
      directTls: args.directTls,
      auth: args.auth,
      user: args.user,
      password: args.password,
      authTimeout: args.authTimeout,
      log,
      logLevel: args.log,
    });
  } catch (e) {
    process.stderr.write(`pgconn: could not start the server: ${(e as Error).message}\n`);
    return 1;
  }
  const host = server.host.includes(':') ? `[${server.host}]` : server.host;
  log(
    `tls=${args.tls}${args.directTls ? ' (direct TLS too)' : ''} auth=${args.auth} user=${args.user} ` +
      `auth-timeout=${args.authTimeout}s log=${args.log} runtime=${runtimeVersion()}`,
  );
  stdout(`listening on ${host}:${server.port}`);
  const received = await signal;
  log(`received ${received}: shutting down`);
  await server.close();
  log('shut down');
  return 0;
}
