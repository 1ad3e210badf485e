/** What the bench's helper processes (raw server, gateway, floor server, delay proxy) share. */

/** The value after `name` on the command line; prints `usage` and exits with 2 when it is missing. */
export function arg(name: string, usage: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (!v) {
    process.stderr.write(`usage: ${usage} (missing ${name})\n`);
    process.exit(2);
  }
  return v;
}

/** Exits when stdin closes (the bench that started this process is gone) or on SIGTERM / SIGINT. */
export function exitWithParent(): void {
  const quit = () => process.exit(0);
  process.stdin.on('end', quit);
  process.stdin.on('close', quit);
  process.stdin.resume();
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
}
