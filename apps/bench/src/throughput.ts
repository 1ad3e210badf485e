/**
 * The throughput bench (issue 9): secure_read / secure_write through pgconn beside the runtime's raw
 * socket ceiling and the drivers users would pick instead, handshake cost (client and server side),
 * memory under backpressure, and the codec micro-benchmark. Writes results/report.md, report.json
 * and chart.svg.
 *
 *   node apps/bench/dist/throughput.js [--quick] [--out DIR] [--runs N] [--sections a,b]
 *       [--runtimes node,bun,deno] [--peer-runtimes node,bun,deno] [--peers-plain] [--read-rows N] [--write-rows N]
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { PgVersion } from '@pgconn/testkit';
import type { Runtime } from './throughput/jobs.ts';
import { isUnavailable, Lab, repoRoot } from './throughput/lab.ts';
import {
  type BenchConfig,
  fullConfig,
  type Machine,
  quickConfig,
  type Report,
  RUNTIMES,
  SECTIONS,
  type Section,
} from './throughput/model.ts';
import { computeRatios, evaluateTargets, toMarkdown, toSvg } from './throughput/report.ts';
import {
  type Ctx,
  ceilingSection,
  codecSection,
  copySection,
  detectRuntimes,
  handshakeSection,
  memorySection,
  PGBENCH,
  PSQL,
  processExecutor,
  serverSection,
  toolVersion,
} from './throughput/suite.ts';

const USAGE = `usage: throughput [--quick] [--out DIR] [--runs N] [--sections ${SECTIONS.join(',')}]
                  [--runtimes ${RUNTIMES.join(',')}] [--peer-runtimes node,bun,deno] [--peers-plain]
                  [--read-rows N] [--write-rows N] [--pg 15,18]
  --quick            CI smoke: tiny volumes, one run, no warm-up (< 60 s); no target verdicts
  --out DIR          where report.md, report.json and chart.svg go (default apps/bench/results)
  --runs N           timed runs per figure (default 5; at least 5 for a report)
  --sections LIST    subset of the sections (default: all)
  --runtimes LIST    client runtimes (default: node,bun,deno; unavailable ones get "not available" rows)
  --peer-runtimes L  runtimes on which pg and postgres.js run (default: all three)
  --peers-plain      also run the peers (pg, postgres.js, psql) over plaintext; by default they run over
                     TLS only (the issue's comparison) while pgconn runs both`;

function parseArgs(argv: readonly string[]): BenchConfig | string {
  const root = repoRoot();
  let out = join(root, 'apps', 'bench', 'results');
  const o = argv.indexOf('--out');
  if (o >= 0 && argv[o + 1]) out = argv[o + 1]!;
  const cfg = argv.includes('--quick') ? quickConfig(out) : fullConfig(out);
  const list = <T extends string>(v: string, allowed: readonly T[], name: string): T[] => {
    const items = v.split(',').filter(Boolean) as T[];
    for (const i of items) if (!allowed.includes(i)) throw new Error(`invalid ${name} value "${i}"`);
    return items;
  };
  try {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      const next = () => {
        const v = argv[++i];
        if (v === undefined) throw new Error(`option ${a} needs a value`);
        return v;
      };
      const count = () => {
        const n = Number(next());
        if (!Number.isInteger(n) || n < 1) throw new Error(`option ${a} needs a positive integer`);
        return n;
      };
      switch (a) {
        case '--quick':
          break;
        case '--out':
          next();
          break;
        case '--runs':
          cfg.runs = count();
          break;
        case '--sections':
          cfg.sections = list<Section>(next(), SECTIONS, '--sections');
          break;
        case '--runtimes':
          cfg.runtimes = list<Runtime>(next(), RUNTIMES, '--runtimes');
          if (!cfg.runtimes.includes('node')) cfg.runtimes.unshift('node');
          break;
        case '--peer-runtimes':
          cfg.peerRuntimes = list<Runtime>(next(), RUNTIMES, '--peer-runtimes');
          break;
        case '--peers-plain':
          cfg.peersPlain = true;
          break;
        case '--no-peers-plain':
          cfg.peersPlain = false;
          break;
        case '--read-rows':
          cfg.readRows = count();
          cfg.rawBytes = cfg.readRows * (cfg.rowWidth + 1);
          break;
        case '--write-rows':
          cfg.writeRows = count();
          break;
        case '--pg':
          cfg.pgVersions = list<'15' | '18'>(next(), ['15', '18'], '--pg').map(Number) as PgVersion[];
          break;
        case '-h':
        case '--help':
          return USAGE;
        default:
          throw new Error(`unknown option "${a}"`);
      }
    }
  } catch (e) {
    return `${(e as Error).message}\n${USAGE}`;
  }
  return cfg;
}

function machineInfo(lab: Lab, runtimes: Record<string, string>, tls: string, started: number[]): Machine {
  const cpus = os.cpus();
  let osName = `${os.type()} ${os.release()} ${os.arch()}`;
  try {
    const pretty = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'));
    if (pretty) osName = `${pretty[1]}, kernel ${os.release()} ${os.arch()}`;
  } catch {}
  const postgres: Record<string, string> = {};
  for (const [v, s] of lab.pg)
    postgres[`PostgreSQL ${v}`] = isUnavailable(s) ? s.unavailable : s.serverVersion;
  const libpq = toolVersion('dpkg-query', ['-W', '-f', '$' + '{Version}', 'libpq5']);
  return {
    date: new Date().toISOString(),
    cpu: cpus[0]?.model.trim() ?? 'unknown CPU',
    cores: cpus.length,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM`,
    os: osName,
    loadavgStart: started,
    loadavgEnd: os.loadavg().map((x) => Math.round(x * 100) / 100),
    runtimes,
    tls,
    libpq: `${toolVersion(PSQL, ['--version'])} with Debian libpq5 ${libpq || '?'}; ${toolVersion(PGBENCH, ['--version'])} with libpq 18 (PostgreSQL 18 package)`,
    postgres,
    pgbouncer: lab.pgbouncer
      ? isUnavailable(lab.pgbouncer)
        ? lab.pgbouncer.unavailable
        : lab.pgbouncer.name
      : 'not started',
  };
}

async function main(): Promise<number> {
  const parsed = parseArgs(process.argv.slice(2));
  if (typeof parsed === 'string') {
    const help = parsed === USAGE;
    (help ? process.stdout : process.stderr).write(`${parsed}\n`);
    return help ? 0 : 2;
  }
  const cfg = parsed;
  const t0 = performance.now();
  const loadStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const log = (line: string) =>
    process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(1)}s] ${line}\n`);
  const warnings: string[] = [];
  const warn = (line: string) => {
    warnings.push(line);
    log(`WARNING ${line}`);
  };
  // Never hang: a hard limit for the whole run (every child is killed on exit).
  const limit = setTimeout(
    () => {
      process.stderr.write('[bench] hard time limit reached: stopping\n');
      process.exit(1);
    },
    cfg.quick ? 240_000 : 6 * 3600_000,
  );
  limit.unref();

  const lab = new Lab();
  // Whatever ends the process (hard limit, signal), its temporary directory goes too.
  process.on('exit', () => rmSync(lab.dir, { recursive: true, force: true }));
  const has = (s: Section) => cfg.sections.includes(s);
  const ctx: Ctx = { lab, cfg, exec: processExecutor(lab), runtimes: [], figures: [], log, warn };
  let codec: Report['codec'] = null;
  try {
    log(
      `mode ${cfg.quick ? 'quick' : 'full'}; sections ${cfg.sections.join(',')}; runtimes ${cfg.runtimes.join(',')}`,
    );
    await lab.startServe();
    log(`pgconn serve on ${lab.serve!.host}:${lab.serve!.port}`);
    const needPg = has('read') || has('write') || has('handshake') || has('server');
    const [runtimes] = await Promise.all([
      detectRuntimes(lab.root, cfg.runtimes),
      needPg ? Promise.all(cfg.pgVersions.map((v) => lab.startPostgres(v))) : null,
      has('ceiling') ? lab.startRaw() : null,
      has('server') ? lab.startGateway() : null,
    ]);
    ctx.runtimes = runtimes;
    for (const rt of runtimes) log(`runtime ${rt.id}: ${rt.available ? rt.version : rt.reason}`);
    for (const [v, s] of lab.pg)
      log(`PostgreSQL ${v}: ${isUnavailable(s) ? s.unavailable : `port ${s.port}`}`);
    if (has('server')) {
      const b = await lab.startPgBouncer(lab.pg.get(18));
      log(`PgBouncer: ${isUnavailable(b) ? b.unavailable : `${b.name} on port ${b.port}`}`);
    }

    const directions = (['read', 'write'] as const).filter((d) => !has(d));
    if (has('ceiling')) await ceilingSection(ctx, directions);
    if (has('read')) await copySection(ctx, 'read', has('ceiling'));
    if (has('write')) await copySection(ctx, 'write', has('ceiling'));
    if (has('handshake')) await handshakeSection(ctx);
    if (has('server')) await serverSection(ctx);
    if (has('memory')) await memorySection(ctx);
    if (has('codec')) codec = await codecSection(ctx);
  } finally {
    clearTimeout(limit);
    await lab.close().catch((e) => warn(`cleanup: ${(e as Error).message}`));
  }

  computeRatios(ctx.figures);
  const runtimeIds = ctx.runtimes.filter((r) => r.available).map((r) => r.id);
  const runtimeVersions: Record<string, string> = {};
  for (const r of ctx.runtimes)
    runtimeVersions[r.id === 'node' ? 'Node' : r.id === 'bun' ? 'Bun' : 'Deno'] = r.available
      ? r.version
      : (r.reason ?? 'not available');
  const ciphers = [
    ...new Set(
      ctx.figures.filter((f) => f.tls?.cipher).map((f) => `${f.tls!.protocol ?? '?'} ${f.tls!.cipher}`),
    ),
  ];
  const report: Report = {
    machine: machineInfo(lab, runtimeVersions, ciphers.join(', ') || 'not observed', loadStart),
    config: cfg,
    figures: ctx.figures,
    targets: evaluateTargets(ctx.figures, cfg, runtimeIds),
    codec,
    elapsedSeconds: (performance.now() - t0) / 1000,
    warnings,
  };
  mkdirSync(cfg.outDir, { recursive: true });
  const md = toMarkdown(report);
  writeFileSync(join(cfg.outDir, 'report.md'), md);
  writeFileSync(join(cfg.outDir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(cfg.outDir, 'chart.svg'), toSvg(report));
  process.stdout.write(`\nTargets (issue 9):\n`);
  for (const t of report.targets) process.stdout.write(`  ${t.status.padEnd(12)} ${t.target}: ${t.detail}\n`);
  process.stdout.write(
    `\nreport: ${join(cfg.outDir, 'report.md')} (${report.elapsedSeconds.toFixed(0)} s)\n`,
  );

  // pgconn on Node must work: its failure fails the run (CI). Other rows only warn.
  const broken = ctx.figures.filter(
    (f) => f.status === 'failed' && f.client === 'pgconn' && f.runtime === 'node',
  );
  if (broken.length) {
    process.stderr.write(
      `pgconn on Node failed ${broken.length} figure(s):\n${broken.map((f) => `  ${f.section} ${f.server} ${f.mode}: ${f.reason}`).join('\n')}\n`,
    );
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench failed: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
