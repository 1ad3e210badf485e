/**
 * `pgconn probe [conninfo|URI]`: connects with libpq-compatible options and prints the negotiation
 * step by step, then sends Terminate. Exit codes: 0 connected, 1 connection failed, 2 bad options.
 */
import type { Connection, ConnectStep, ResolvedOptions } from '@pgconn/core';
import { connect as coreConnect, OptionError, PgConnError } from '@pgconn/core';
import { resolveNodeOptions } from '@pgconn/transport-node';
import { CURRENT_RUNTIME, currentTransport, type RuntimeName, runtimeVersion, runUnder } from '../runtime.ts';

export interface ProbeArgs {
  conninfo?: string;
  json: boolean;
  runtime: RuntimeName;
}

export interface ProbeStep {
  elapsedMs: number;
  state: string;
  host: string;
  address: string;
  port: number;
  detail: string;
}

export interface ProbeReport {
  ok: boolean;
  runtime: string;
  target: { hosts: Array<{ host: string; port: number }>; user: string; dbname: string; sslmode: string };
  steps: ProbeStep[];
  result?: {
    address: string;
    encryption: string;
    tlsVersion: string | null;
    cipher: string | null;
    alpn: string | null;
    direct: boolean;
    authMethod: string;
    protocolVersion: string;
    serverVersion: string | null;
    connections: number;
  };
  error?: { kind: string; message: string; sqlstate?: string };
}

const USAGE = 'usage: pgconn probe [--json] [--runtime node|bun|deno] [conninfo|URI]';

export function parseProbeArgs(argv: string[]): ProbeArgs {
  const args: ProbeArgs = { json: false, runtime: CURRENT_RUNTIME };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') args.json = true;
    else if (a === '--runtime') {
      const r = argv[++i];
      if (r !== 'node' && r !== 'bun' && r !== 'deno')
        throw new OptionError(`invalid --runtime value: "${r ?? ''}"\n${USAGE}`);
      args.runtime = r;
    } else if (a.startsWith('--runtime=')) {
      return parseProbeArgs([...argv.slice(0, i), '--runtime', a.slice(10), ...argv.slice(i + 1)]);
    } else if (a.startsWith('-') && a !== '-') throw new OptionError(`unknown option "${a}"\n${USAGE}`);
    else if (args.conninfo === undefined) args.conninfo = a;
    else throw new OptionError(`too many arguments\n${USAGE}`);
  }
  return args;
}

const version = (v: number): string => `${v >>> 16}.${v & 0xffff}`;

/** Runs the probe; returns the report (never throws for connection failures). */
export async function probe(
  args: ProbeArgs,
  env: Record<string, string | undefined> = process.env,
  live?: (step: ProbeStep) => void,
): Promise<ProbeReport> {
  if (args.runtime !== CURRENT_RUNTIME) {
    throw new OptionError(
      `--runtime ${args.runtime}: this process runs on ${CURRENT_RUNTIME} (pgconn probe re-runs itself)`,
    );
  }
  // Options are resolved the same way everywhere (node:fs for .pgpass and the service file works
  // on all three); only the transport is the runtime's own.
  const resolved: ResolvedOptions = resolveNodeOptions(args.conninfo, { env });
  const report: ProbeReport = {
    ok: false,
    runtime: runtimeVersion(),
    target: {
      hosts: resolved.hosts.map((h) => ({ host: h.socketPath ?? h.host, port: h.port })),
      user: resolved.user,
      dbname: resolved.dbname,
      sslmode: resolved.sslmode,
    },
    steps: [],
  };
  const t0 = performance.now();
  const onStep = (s: ConnectStep) => {
    const step: ProbeStep = {
      elapsedMs: Math.round((performance.now() - t0) * 10) / 10,
      state: s.state,
      host: s.host,
      address: s.address,
      port: s.port,
      detail: s.detail,
    };
    report.steps.push(step);
    live?.(step);
  };
  let conn: Connection | null = null;
  try {
    conn = await coreConnect(await currentTransport(), resolved, { onStep });
    const h = conn.handshake;
    const ep = conn.endpoint;
    report.result = {
      address: 'path' in ep ? ep.path : `${ep.host}:${ep.port}`,
      encryption: h.encryption === 'ssl' ? (h.direct ? 'SSL (direct)' : 'SSL') : 'none',
      tlsVersion: h.tls?.protocol ?? null,
      cipher: h.tls?.cipher ?? null,
      alpn: h.tls?.alpnProtocol ?? null,
      direct: h.direct,
      authMethod: h.authMethod,
      protocolVersion: version(h.protocolVersion),
      serverVersion: conn.parameters.get('server_version') ?? null,
      connections: h.connections,
    };
    report.ok = true;
  } catch (e) {
    if (e instanceof OptionError) throw e;
    const err = e instanceof PgConnError ? e : new Error(String(e));
    report.error = {
      kind: err instanceof PgConnError ? err.kind : 'internal',
      message: err.message,
      ...(err instanceof PgConnError && 'code' in err && typeof err.code === 'string'
        ? { sqlstate: err.code }
        : {}),
    };
  } finally {
    await conn?.close();
  }
  return report;
}

export function formatStep(s: ProbeStep): string {
  const where = s.address === s.host || !s.host ? s.address : `${s.host} (${s.address})`;
  return `${s.elapsedMs.toFixed(1).padStart(8)} ms  ${s.state.padEnd(17)} ${where}:${s.port}  ${s.detail}`;
}

export function formatResult(r: NonNullable<ProbeReport['result']>): string[] {
  return [
    `connected to ${r.address}`,
    `  encryption        ${r.encryption}${r.tlsVersion ? ` (${r.tlsVersion}, ${r.cipher ?? '?'}, ALPN ${r.alpn ?? 'none'})` : ''}`,
    `  authentication    ${r.authMethod}`,
    `  protocol          ${r.protocolVersion}`,
    `  server version    ${r.serverVersion ?? 'unknown'}`,
    `  TCP connections   ${r.connections}`,
  ];
}

export async function runProbe(argv: string[]): Promise<number> {
  let args: ProbeArgs;
  try {
    args = parseProbeArgs(argv);
    if (args.runtime !== CURRENT_RUNTIME) return await runUnder(args.runtime, ['probe', ...argv]);
  } catch (e) {
    process.stderr.write(`pgconn: ${(e as Error).message}\n`);
    return 2;
  }
  const live = args.json ? undefined : (s: ProbeStep) => process.stdout.write(`${formatStep(s)}\n`);
  let report: ProbeReport;
  try {
    report = await probe(args, process.env, live);
  } catch (e) {
    if (e instanceof OptionError) {
      process.stderr.write(`pgconn: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (args.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else if (report.result) process.stdout.write(`${formatResult(report.result).join('\n')}\n`);
  if (!report.ok) {
    if (!args.json) process.stderr.write(`pgconn: error: ${report.error?.message ?? 'connection failed'}\n`);
    return 1;
  }
  return 0;
}
