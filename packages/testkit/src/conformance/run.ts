/**
 * Runs the conformance suite on the runtime executing this file, with that runtime's transport:
 *
 *   bun run packages/testkit/src/conformance/run.ts --runtime bun [--env <json|@file>]
 *   deno run -A packages/testkit/src/conformance/run.ts --runtime deno [--env <json|@file>]
 *
 * (Node runs the suite inside vitest instead: packages/testkit/test/conformance-runtimes.test.ts.)
 * The environment (servers, certificates) comes from `--env` or PGCONN_CONFORMANCE_ENV. Prints the
 * results table on stdout, then one `@@conformance-json@@ {…}` line for the harness; progress goes to
 * stderr. Exits 1 if any check failed, 2 if the suite could not start.
 */
import process from 'node:process';
import type { Transport } from '@pgconn/core';
import { loadEnv } from './env.ts';
import { type CheckResult, runConformance } from './suite.ts';
import { formatTable, JSON_MARKER } from './table.ts';

/** Where each runtime's transport lives (imported by path: the runner needs no package build). */
const TRANSPORTS: Record<string, { path: string; exports: string[] }> = {
  bun: { path: '../../../transport-bun/src/index.ts', exports: ['bunTransport', 'BunTransport'] },
  deno: { path: '../../../transport-deno/src/index.ts', exports: ['denoTransport', 'DenoTransport'] },
  node: { path: '../../../transport-node/src/index.ts', exports: ['nodeTransport', 'NodeTransport'] },
};

function runtimeVersion(): string {
  const g = globalThis as { Bun?: { version: string }; Deno?: { version: { deno: string } } };
  if (g.Deno) return `deno ${g.Deno.version.deno}`;
  if (g.Bun) return `bun ${g.Bun.version}`;
  return `node ${process.version}`;
}

async function loadTransport(runtime: string): Promise<Transport> {
  const spec = TRANSPORTS[runtime];
  if (!spec) throw new Error(`unknown runtime "${runtime}" (bun, deno, node)`);
  const url = new URL(spec.path, import.meta.url).href;
  const mod = (await import(url)) as Record<string, unknown>;
  const [instance, klass] = spec.exports as [string, string];
  if (mod[instance]) return mod[instance] as Transport;
  if (typeof mod[klass] === 'function') return new (mod[klass] as new () => Transport)();
  throw new Error(`${spec.path} exports neither ${instance} nor ${klass}`);
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const r = args.indexOf('--runtime');
  const runtime = r >= 0 ? args[r + 1] : undefined;
  if (!runtime) throw new Error('usage: run.ts --runtime bun|deno [--env <json|@file>]');
  const transport = await loadTransport(runtime);
  const env = await loadEnv(
    args,
    (n) => process.env[n],
    async (path) => {
      const b = await transport.readFile(path);
      if (!b) throw new Error(`no such file: ${path}`);
      return new TextDecoder().decode(b);
    },
  );
  const version = runtimeVersion();
  const t0 = performance.now();
  const results: CheckResult[] = await runConformance(transport, env, {
    onResult: (x) => process.stderr.write(`  ${x.status.padEnd(11)} ${x.id} (${x.ms} ms)\n`),
  });
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  process.stdout.write(
    `${formatTable(`${runtime} (${version}, transport ${transport.runtime})`, results)}\n`,
  );
  process.stdout.write(`${JSON_MARKER} ${JSON.stringify({ runtime, version, seconds, results })}\n`);
  return results.some((x) => x.status === 'fail') ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`conformance runner failed: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(2);
  },
);
