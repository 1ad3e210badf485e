/**
 * The Bun transport's own mechanics, on Bun: runs test/bun-selftest.ts with node_modules/.bin/bun
 * (certificates from testkit, made here on Node) and fails with its output if any check failed.
 * Behaviour against PostgreSQL is covered by the conformance suite (packages/testkit).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type CertSet, createCertSet } from '@pgconn/testkit';
import { afterAll, beforeAll, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const script = fileURLToPath(new URL('./bun-selftest.ts', import.meta.url));

let certs: CertSet;

beforeAll(async () => {
  certs = await createCertSet();
}, 30_000);

afterAll(async () => {
  await certs?.remove();
});

it('bun-selftest.ts passes on Bun', async () => {
  const env = {
    rootServerCa: certs.bundles.rootServerCa,
    rootClientCa: certs.bundles.rootClientCa,
    serverCert: certs.server.localhost.cert,
    serverKey: certs.server.localhost.key,
    clientCert: certs.client.client.cert,
    clientKey: certs.client.client.key,
    encryptedKey: certs.clientKeys.encryptedPem.path,
  };
  const out = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(`${root}node_modules/.bin/bun`, [script], {
      cwd: root,
      env: { ...process.env, PGCONN_BUN_SELFTEST: JSON.stringify(env), NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
  console.log(out.output);
  expect(out.code, out.output).toBe(0);
}, 150_000);
