/**
 * Self-signed test certificates made with the openssl CLI in a temporary directory, as DER: the
 * core tests that read certificates (channel binding) get them from a tool independent of our code.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface OpensslDir {
  readonly dir: string;
  /** Runs openssl in the directory; returns its stdout. */
  openssl(...args: string[]): Buffer;
  /** A self-signed `/CN=pgconn-test` certificate, one day valid, as `name.pem` and `name.der`; returns the DER. */
  cert(name: string, keyArgs: string[], signArgs: string[]): Uint8Array;
  remove(): void;
}

export function opensslDir(prefix: string): OpensslDir {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const openssl = (...args: string[]): Buffer =>
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  return {
    dir,
    openssl,
    cert(name, keyArgs, signArgs) {
      openssl(
        'req',
        '-x509',
        ...keyArgs,
        ...signArgs,
        '-subj',
        '/CN=pgconn-test',
        '-days',
        '1',
        '-out',
        `${name}.pem`,
      );
      openssl('x509', '-in', `${name}.pem`, '-outform', 'DER', '-out', `${name}.der`);
      return new Uint8Array(readFileSync(join(dir, `${name}.der`)));
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
