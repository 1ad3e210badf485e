// pg-copy-streams ships no types (and @types/pg-copy-streams is not installed): what the bench uses.
declare module 'pg-copy-streams' {
  import type { Readable, Writable } from 'node:stream';
  export function to(sql: string): Readable & { submit(connection: unknown): void };
  export function from(sql: string): Writable & { rowCount: number; submit(connection: unknown): void };
}
