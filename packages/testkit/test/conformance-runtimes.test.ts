/**
 * The conformance suite (src/conformance) on Node, Bun and Deno against the same servers: PostgreSQL
 * 15 and 18 with TLS, scripted fake servers for the CVE cases, and one certificate set, all started
 * here on Node. Node runs the suite in-process with @pgconn/transport-node; Bun and Deno run
 * src/conformance/run.ts with their own transport (`node_modules/.bin/bun …`, `…/deno run -A …`) and
 * report back as JSON. Each runtime's table is printed for the CI log. A check may only be
 * `unsupported` where UNSUPPORTED lists it, with that reason (a capability the runtime lacks, reported
 * by its transport).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { nodeTransport } from '@pgconn/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHECK_IDS,
  type CheckResult,
  type ConformanceEnv,
  formatTable,
  JSON_MARKER,
  runConformance,
} from '../src/conformance/index.ts';
import {
  backend,
  type CertSet,
  createCertSet,
  type FakeServer,
  type PgServer,
  SSL_REQUEST_BYTES,
  startFakeServer,
  startTlsPostgres,
  TEST_PASSWORD,
  v2Error,
} from '../src/index.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const runner = fileURLToPath(new URL('../src/conformance/run.ts', import.meta.url));
const denoImportMap = fileURLToPath(new URL('../src/conformance/deno-import-map.json', import.meta.url));
const BUN = `${root}node_modules/.bin/bun`;
const DENO = `${root}node_modules/.bin/deno`;
const DENO_INDEX = `${root}packages/transport-deno/src/index.ts`;

let certs: CertSet;
let pg15: PgServer;
let pg18: PgServer;
const fakes: Record<'sslJunk' | 'sslError' | 'directNoAlpn' | 'stall' | 'linger', FakeServer> = {} as never;
let env: ConformanceEnv;

beforeAll(async () => {
  certs = await createCertSet();
  const { certPem, keyPem } = certs.server.localhost;
  [pg15, pg18, fakes.sslJunk, fakes.sslError, fakes.directNoAlpn, fakes.stall, fakes.linger] =
    await Promise.all([
      startTlsPostgres(15, certs),
      startTlsPostgres(18, certs),
      startFakeServer(async (peer) => {
        await peer.readStartupPacket();
        // 'S' and an AuthenticationOk in one write: a man in the middle injecting plaintext.
        await peer.write(new Uint8Array([0x53, ...backend({ type: 'AuthenticationOk' })]));
        await peer.stall();
      }),
      startFakeServer(async (peer) => {
        await peer.readStartupPacket();
        await peer.write(v2Error('FATAL:  sorry, too many clients already \x1b[31mINJECTED'));
        await peer.stall();
      }),
      startFakeServer(
        async (peer) => {
          await peer.startTls();
          await peer.stall();
        },
        { tls: { cert: certPem, key: keyPem, alpnProtocols: [] } },
      ),
      startFakeServer((peer) => peer.stall()),
      startFakeServer(
        async (peer) => {
          await peer.readStartupPacket();
          await peer.send({ type: 'AuthenticationOk' }, { type: 'ReadyForQuery', status: 'I' });
          try {
            for (;;) await peer.readMessage(); // until the client's FIN
          } catch {
            // FakePeerClosedError: the client is gone; our side stays open a while longer
          }
          await new Promise((r) => setTimeout(r, 3000));
          peer.destroy();
        },
        { allowHalfOpen: true },
      ),
    ]);
  const at = (s: PgServer) => ({ host: s.host, port: s.port, socketDir: s.socketDir });
  const fake = (f: FakeServer) => ({ host: f.host, port: f.port });
  env = {
    pg15: at(pg15),
    pg18: at(pg18),
    password: TEST_PASSWORD,
    certs: {
      rootServerCa: certs.bundles.rootServerCa,
      rootClientCa: certs.bundles.rootClientCa,
      wrongCa: certs.ca.wrong.cert,
      serverCert: certs.server.localhost.cert,
      serverKey: certs.server.localhost.key,
      clientCert: certs.client.client.cert,
      clientKey: certs.client.client.key,
      clientKeyEncrypted: certs.clientKeys.encryptedPem.path,
      clientKeyPassphrase: certs.clientKeys.encryptedPem.passphrase,
      clientRevokedCert: certs.client.revoked.cert,
      clientRevokedKey: certs.client.revoked.key,
    },
    fake: {
      sslJunk: fake(fakes.sslJunk),
      sslError: fake(fakes.sslError),
      directNoAlpn: fake(fakes.directNoAlpn),
      stall: fake(fakes.stall),
      linger: fake(fakes.linger),
    },
  };
}, 90_000);

afterAll(async () => {
  await Promise.all([pg15?.stop(), pg18?.stop(), ...Object.values(fakes).map((f) => f?.close())]);
  await certs?.remove();
});

type FakeCounts = Record<keyof typeof fakes, number>;

const fakeCounts = (): FakeCounts => ({
  sslJunk: fakes.sslJunk.connections,
  sslError: fakes.sslError.connections,
  directNoAlpn: fakes.directNoAlpn.connections,
  stall: fakes.stall.connections,
  linger: fakes.linger.connections,
});

/**
 * What a runtime's clients did to the fakes since `start`: one connection each; nothing but the
 * SSLRequest sent to the two SSLRequest fakes; and every socket closed by the client (no leak).
 */
async function fakeConnectionsFrom(start: FakeCounts): Promise<void> {
  for (const key of Object.keys(fakes) as (keyof typeof fakes)[]) {
    const peers = fakes[key].peers.slice(start[key]);
    expect(peers.length, `${key}: connections`).toBe(1);
    if (key === 'sslJunk' || key === 'sslError')
      for (const p of peers) expect(p.received, `${key}: bytes the client sent`).toEqual(SSL_REQUEST_BYTES);
    if (key === 'linger') {
      // The fake holds its side open on purpose: the client must have sent Terminate and its FIN.
      for (const p of peers) {
        expect(p.clientClosed, 'linger: the client closed its side').toBe(true);
        expect([...p.received.slice(-5)], 'linger: the last bytes the client sent').toEqual([
          0x58, 0, 0, 0, 4,
        ]);
      }
      continue;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(peers.map((p) => p.closed)),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${key}: the client left its socket open`)), 2000);
      }),
    ]).finally(() => clearTimeout(timer));
  }
}

/**
 * The checks a runtime may report `unsupported`, each with the reason its transport must give (a
 * capability the runtime lacks, documented in the transport's README). Anything else unsupported, or
 * a listed check that stops being unsupported, fails: the table is kept honest both ways.
 */
const UNSUPPORTED: Record<'node' | 'bun' | 'deno', Record<string, RegExp>> = {
  node: {},
  bun: {},
  deno: {
    // Deno's node:tls server does not verify client certificate chains (transport-deno README).
    'server side: client certificate (cert auth)':
      /^client certificate verification on the server side is not supported on Deno: its node:tls server does not verify client certificate chains/,
  },
};

/** Every check ran; each passed, or is unsupported exactly where UNSUPPORTED says, with that reason. */
function expectConformant(runtime: keyof typeof UNSUPPORTED, results: readonly CheckResult[]): void {
  expect(results.map((r) => r.id)).toEqual(CHECK_IDS);
  const allowed = UNSUPPORTED[runtime];
  const bad = results.filter((r) => {
    const reason = allowed[r.id];
    if (reason) return r.status !== 'unsupported' || !reason.test(r.detail);
    return r.status !== 'pass';
  });
  expect(bad.map((r) => `${runtime}: ${r.id}: ${r.status}: ${r.detail}`)).toEqual([]);
}

interface Spawned {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<Spawned> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: root,
      env: { ...process.env, PGCONN_CONFORMANCE_ENV: JSON.stringify(env), NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs the suite in another runtime; prints its table; returns its results. */
async function runOn(runtime: string, cmd: string, args: string[]): Promise<CheckResult[]> {
  const out = await run(cmd, args, 120_000);
  const line = out.stdout.split('\n').find((l) => l.startsWith(JSON_MARKER));
  if (!line) {
    throw new Error(
      `${runtime}: the conformance runner printed no results (exit ${out.code})\n--- stdout\n${out.stdout}\n--- stderr\n${out.stderr}`,
    );
  }
  const table = out.stdout.slice(0, out.stdout.indexOf(JSON_MARKER)).trimEnd();
  console.log(`\n${table}\n`);
  const parsed = JSON.parse(line.slice(JSON_MARKER.length)) as { results: CheckResult[] };
  return parsed.results;
}

describe('conformance suite on every runtime', () => {
  it('node: in-process with @pgconn/transport-node', async () => {
    const start = fakeCounts();
    const results = await runConformance(nodeTransport, env);
    console.log(`\n${formatTable(`node (${process.version}, transport node)`, results)}\n`);
    // Node has every capability: nothing may be unsupported there.
    expectConformant('node', results);
    await fakeConnectionsFrom(start);
  }, 120_000);

  it('bun: node_modules/.bin/bun src/conformance/run.ts --runtime bun', async () => {
    expect(existsSync(BUN), `${BUN} (the bun devDependency) is missing`).toBe(true);
    const start = fakeCounts();
    const results = await runOn('bun', BUN, [runner, '--runtime', 'bun']);
    expectConformant('bun', results);
    await fakeConnectionsFrom(start);
  }, 150_000);

  it('deno: node_modules/.bin/deno run -A src/conformance/run.ts --runtime deno', async () => {
    const source = existsSync(DENO_INDEX) ? readFileSync(DENO_INDEX, 'utf8') : '';
    const exported =
      /export\s+(?:class|const|let|function)\s+DenoTransport\b/.test(source) ||
      /export\s*\{[^}]*\bDenoTransport\b[^}]*\}/.test(source);
    if (!exported) {
      throw new Error(
        'Deno: packages/transport-deno/src/index.ts does not export DenoTransport yet, so the conformance suite cannot run on Deno',
      );
    }
    expect(existsSync(DENO), `${DENO} (the deno devDependency) is missing`).toBe(true);
    const start = fakeCounts();
    // The import map points @pgconn/core at its sources (Bun uses tsconfig paths, vitest its alias).
    const results = await runOn('deno', DENO, [
      'run',
      '-A',
      '--import-map',
      denoImportMap,
      runner,
      '--runtime',
      'deno',
    ]);
    expectConformant('deno', results);
    await fakeConnectionsFrom(start);
  }, 150_000);
});
