#!/usr/bin/env node
import { runProbe } from './commands/probe.ts';
import { runServe, SERVE_USAGE } from './commands/serve.ts';

const USAGE = `usage: pgconn <command> [options]

commands:
  probe [--json] [--runtime node|bun|deno] [conninfo|URI]   connect and show the negotiation step by step
  serve [--port 5432] [--tls-dir DIR] [--auth …]   a small PostgreSQL look-alike (pgconn serve --help)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'probe':
      return runProbe(rest);
    case 'serve': {
      if (rest.includes('-h') || rest.includes('--help')) {
        process.stdout.write(`${SERVE_USAGE}\n`);
        return 0;
      }
      const code = await runServe(rest);
      // Everything is closed by now; should a straggling handle keep the loop alive, do not hang.
      setTimeout(() => process.exit(code), 3000).unref();
      return code;
    }
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
