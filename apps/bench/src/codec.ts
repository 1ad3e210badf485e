/**
 * Codec micro-benchmark: pgconn's Framer + decodeBackend (or decodeDataRowText for DataRows as
 * strings) against node-postgres's pg-protocol Parser on identical in-memory streams fed in 64 KiB
 * chunks.
 *
 *   node apps/bench/dist/codec.js [--quick] [--json] [--runs N] [--warmup N]
 *     [--min-sample-ms N] [--rows N] [--copy-lines N] [--bulk N] [--workload datarow,copy-lines,copy-bulk]
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { type BenchOptions, FULL, QUICK, runCodecBench, toMarkdown } from './codec/run.ts';
import type { WorkloadId } from './codec/streams.ts';

const WORKLOADS: readonly WorkloadId[] = ['datarow', 'copy-lines', 'copy-bulk'];

const USAGE = `usage: codec [--quick] [--json] [--runs N] [--warmup N] [--min-sample-ms N]
             [--rows N] [--copy-lines N] [--bulk N] [--workload ${WORKLOADS.join(',')}]
  --quick         small streams, 1 run, no warm-up (CI smoke)
  --json          print the report as JSON instead of Markdown
  --workload W    comma-separated subset of the workloads (default: all)
  --runs N        timed runs per parser and workload (default ${FULL.runs})
  --warmup N      untimed runs first (default ${FULL.warmup})
  --min-sample-ms N  repeat the parse within a timed run until it lasts ~N ms, as calibrated by
                  the warm-up (default ${FULL.minSampleMs}; 0: one parse per run)
  --rows N        DataRows in the DataRow stream (default ${FULL.rows})
  --copy-lines N  CopyData lines in the COPY text stream (default ${FULL.copyLines})
  --bulk N        64 KiB CopyData messages in the bulk stream (default ${FULL.bulkMessages})`;

/** A full GC between runs, without needing `node --expose-gc` on the command line. */
function exposeGc(): (() => void) | undefined {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    return typeof gc === 'function' ? () => (gc as () => void)() : undefined;
  } catch {
    return undefined;
  }
}

function parseArgs(argv: readonly string[]): { options: BenchOptions; json: boolean } | string {
  let options: BenchOptions = { ...FULL };
  let json = false;
  const counts: Record<
    string,
    'runs' | 'warmup' | 'minSampleMs' | 'rows' | 'copyLines' | 'bulkMessages' | undefined
  > = {
    '--runs': 'runs',
    '--warmup': 'warmup',
    '--min-sample-ms': 'minSampleMs',
    '--rows': 'rows',
    '--copy-lines': 'copyLines',
    '--bulk': 'bulkMessages',
  };
  // --quick first, so that explicit counts given with it still win.
  if (argv.includes('--quick')) options = { ...QUICK };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--quick') continue;
    if (arg === '--json') json = true;
    else if (arg === '--help' || arg === '-h') return USAGE;
    else if (arg === '--workload' || arg.startsWith('--workload=')) {
      const raw = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
      const ids = (raw ?? '').split(',').filter((x) => x !== '');
      const bad = ids.find((x) => !(WORKLOADS as readonly string[]).includes(x));
      if (ids.length === 0 || bad !== undefined) return `invalid workload ${bad ?? raw}\n${USAGE}`;
      options = { ...options, workloads: ids as WorkloadId[] };
    } else {
      const [name, inline] = arg.split('=', 2) as [string, string | undefined];
      const key = counts[name];
      if (key === undefined) return `unknown argument ${arg}\n${USAGE}`;
      const raw = inline ?? argv[++i];
      const n = Number(raw);
      if (!Number.isInteger(n) || n < (key === 'warmup' || key === 'minSampleMs' ? 0 : 1))
        return `invalid value for ${name}: ${raw}`;
      options = { ...options, [key]: n };
    }
  }
  return { options, json };
}

const parsed = parseArgs(process.argv.slice(2));
if (typeof parsed === 'string') {
  const help = parsed === USAGE;
  (help ? process.stdout : process.stderr).write(`${parsed}\n`);
  process.exitCode = help ? 0 : 2;
} else {
  const gc = exposeGc();
  const report = runCodecBench(gc ? { ...parsed.options, gc } : parsed.options);
  process.stdout.write(parsed.json ? `${JSON.stringify(report, null, 2)}\n` : toMarkdown(report));
}
