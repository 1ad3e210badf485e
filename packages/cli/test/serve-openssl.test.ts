/**
 * `pgconn serve` against `openssl s_client`: STARTTLS the PostgreSQL way (`-starttls postgres`:
 * SSLRequest, 'S', handshake) verified against the generated CA, and direct TLS with and without
 * ALPN `postgresql`.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  eventually,
  type RunResult,
  run,
  type Served,
  serve,
  stopAllServers,
  tempDir,
} from './serve-harness.ts';

const dir = tempDir('pgconn-serve-openssl-');
const CA = join(dir.path, 'ca.crt');
let direct: Served; // --tls-dir, --direct-tls
let noDirect: Served; // TLS, but no direct TLS
let plain: Served; // --tls off

beforeAll(async () => {
  direct = await serve(['--tls-dir', dir.path, '--direct-tls']);
  [noDirect, plain] = await Promise.all([
    serve(['--tls-cert', join(dir.path, 'server.crt'), '--tls-key', join(dir.path, 'server.key')]),
    serve(['--tls', 'off']),
  ]);
}, 30_000);

afterAll(async () => {
  await stopAllServers();
  dir.remove();
});

const env = { PATH: '/usr/bin:/bin', HOME: dir.path };

function sClient(port: number, extra: string[]): Promise<RunResult> {
  return run(
    'openssl',
    ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', CA, ...extra],
    env,
  );
}

/**
 * Runs s_client with stdin left open, so only the server can end it. `ended`: it exited within `ms`
 * (after `ready` showed up in its output, when given); otherwise it is killed.
 */
function sClientUntilClosed(
  port: number,
  extra: string[],
  ms: number,
  ready?: string,
): Promise<{ stdout: string; ended: boolean }> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', CA, ...extra], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let timer: NodeJS.Timeout | undefined = ready ? undefined : setTimeout(() => child.kill('SIGKILL'), ms);
    const limit = setTimeout(() => child.kill('SIGKILL'), ms + 10_000);
    child.stdout.on('data', (d) => {
      stdout += d;
      if (ready && timer === undefined && stdout.includes(ready))
        timer = setTimeout(() => child.kill('SIGKILL'), ms);
    });
    child.on('close', (_code, signal) => {
      clearTimeout(timer);
      clearTimeout(limit);
      resolve({ stdout, ended: signal === null });
    });
  });
}

describe('openssl s_client', () => {
  it('-starttls postgres completes a verified TLS 1.3 handshake', async () => {
    const r = await sClient(direct.port, ['-starttls', 'postgres', '-verify_return_error']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Verify return code: 0 (ok)');
    expect(r.stdout).toMatch(/New, TLSv1\.3, Cipher is TLS_/);
    expect(r.stdout).toContain('subject=CN = localhost');
  });

  it('-starttls postgres against --tls off fails (the server answers N)', async () => {
    const r = await sClient(plain.port, ['-starttls', 'postgres']);
    expect(r.code).not.toBe(0);
    // Eight bytes written (SSLRequest), one read ('N'): no handshake.
    expect(r.stdout).toContain('SSL handshake has read 1 bytes and written 8 bytes');
    expect(r.stdout).toContain('no peer certificate available');
    expect(r.stdout).toContain('Cipher is (NONE)');
  });

  it('direct TLS with -alpn postgresql completes, ALPN selected', async () => {
    const mark = direct.log().length;
    const r = await sClient(direct.port, ['-alpn', 'postgresql', '-verify_return_error']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ALPN protocol: postgresql');
    expect(r.stdout).toContain('Verify return code: 0 (ok)');
    await eventually(() => /direct SSL connection accepted/.test(direct.logSince(mark)));
  });

  it('direct TLS without ALPN is closed by the server', async () => {
    const mark = direct.log().length;
    const r = await sClientUntilClosed(direct.port, [], 5000);
    expect(r.ended).toBe(true);
    expect(r.stdout).toContain('No ALPN negotiated');
    await eventually(() =>
      /closed \(direct-tls-rejected\): received direct SSL connection request without ALPN/.test(
        direct.logSince(mark),
      ),
    );
  });

  it('direct TLS with ALPN stays open for the startup packet (until the client leaves)', async () => {
    const r = await sClientUntilClosed(
      direct.port,
      ['-alpn', 'postgresql'],
      700,
      'ALPN protocol: postgresql',
    );
    expect(r.ended).toBe(false);
    expect(r.stdout).toContain('ALPN protocol: postgresql');
  });

  it('direct TLS against a server without --direct-tls is closed before any handshake', async () => {
    const mark = noDirect.log().length;
    const r = await sClientUntilClosed(noDirect.port, ['-alpn', 'postgresql'], 5000);
    expect(r.ended).toBe(true);
    expect(r.stdout).not.toContain('ALPN protocol: postgresql');
    await eventually(() =>
      /closed \(direct-tls-rejected\): direct SSL connection rejected/.test(noDirect.logSince(mark)),
    );
  });
});
