#!/usr/bin/env node
import { runDemo } from './commands/demo.ts';

const USAGE = `usage: pgconn <command>

commands:
  demo     decode a captured PostgreSQL handshake step by step
`;

function main(argv: string[]): number {
  const [command] = argv;
  switch (command) {
    case 'demo':
      return runDemo();
    case undefined:
    case '-h':
    case '--help':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`pgconn: unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

process.exitCode = main(process.argv.slice(2));
