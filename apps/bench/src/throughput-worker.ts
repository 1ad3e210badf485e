/**
 * Entry of the client process: `node|bun|deno dist/throughput-worker.js '<job json>'`.
 * See throughput/worker.ts; prints `RESULT <json>` and exits 0, or the error on stderr and exits 1.
 */
import type { Job } from './throughput/jobs.ts';
import { runJob } from './throughput/worker.ts';

const job = JSON.parse(process.argv[2] ?? 'null') as Job | null;
if (!job) {
  process.stderr.write("usage: throughput-worker '<job json>'\n");
  process.exit(2);
}
runJob(job).then(
  (result) => {
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
    process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
