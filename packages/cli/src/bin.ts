#!/usr/bin/env node
import { runProbe } from './commands/probe.ts';

const USAGE = `usage: pgconn <command> [options]

commands:
  probe [--json] [--runtime node] [conninfo|URI]   connect and show the negotiation step by step
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'probe':
      return runProbe(rest);
    case '-h':
    case '--help':
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(command ? `pgconn: unknown command "${command}"\n${USAGE}` : USAGE);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`pgconn: internal error: ${(e as Error).stack ?? e}\n`);
    process.exitCode = 1;
  },
);
