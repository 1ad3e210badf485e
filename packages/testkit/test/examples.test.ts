/**
 * The README's examples (examples/node.mjs, bun.ts, deno.ts at the repository root), each run with
 * its own runtime against PostgreSQL 18 with TLS: sslmode=verify-full against the test root, SCRAM
 * with PGPASSWORD, one query, close. Node and Bun import the built packages (`npm run build`, as a
 * user would get them from npm); Deno resolves @pgconn/* to their sources through the root deno.json
 * workspace.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CertSet, createCertSet, type PgServer, startTlsPostgres, TEST_PASSWORD } from '../src/index.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const BUN = `${root}node_modules/.bin/bun`;
const DENO = `${root}node_modules/.bin/deno`;

let certs: CertSet;
let pg: PgServer;
let env: Record<string, string>;

beforeAll(async () => {
  certs = await createCertSet();
  pg = await startTlsPostgres(18, certs);
  const url =
    `postgresql://scramuser@localhost:${pg.port}/postgres` +
    `?sslmode=verify-full&sslrootcert=${encodeURIComponent(certs.bundles.rootServerCa)}`;
  // No inherited PG* variable may change what the example does.
  const clean = Object.entries(process.env).filter(([k, v]) => !k.startsWith('PG') && v !== undefined);
  env = {
    ...(Object.fromEntries(clean) as Record<string, string>),
    PGCONN_EXAMPLE_URL: url,
    PGPASSWORD: TEST_PASSWORD,
    NO_COLOR: '1',
    DENO_NO_UPDATE_CHECK: '1',
  };
}, 120_000);

afterAll(async () => {
  await pg?.stop();
  await certs?.remove();
});

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: root, env, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (error as { code?: unknown }).code : 0;
      resolve({ code: typeof code === 'number' ? code : null, stdout, stderr });
    });
  });
}

/** What every example prints: TLS (verify-full), SCRAM-SHA-256-PLUS (channel binding), the row. */
function expectExampleOutput(out: { code: number | null; stdout: string; stderr: string }): void {
  expect(out.code, `${out.stdout}\n${out.stderr}`).toBe(0);
  expect(out.stdout.trim().split('\n')).toEqual([
    'connected over TLSv1.3 with SCRAM-SHA-256-PLUS',
    '[["scramuser","42"]]',
  ]);
}

describe('README examples', () => {
  it('the README shows each example file as it is', () => {
    const readme = readFileSync(`${root}README.md`, 'utf8');
    for (const file of ['node.mjs', 'bun.ts', 'deno.ts']) {
      const source = readFileSync(`${root}examples/${file}`, 'utf8').trimEnd();
      expect(
        readme.includes(`\n${source}\n\`\`\``),
        `README.md does not show examples/${file} verbatim`,
      ).toBe(true);
    }
  });

  it('node examples/node.mjs (built @pgconn/transport-node)', async () => {
    const dist = `${root}packages/transport-node/dist/index.js`;
    expect(existsSync(dist), `${dist} is missing: run \`npm run build\` first`).toBe(true);
    expectExampleOutput(await run(process.execPath, ['examples/node.mjs']));
  }, 60_000);

  it('bun examples/bun.ts (built @pgconn/core + @pgconn/transport-bun)', async () => {
    const dist = `${root}packages/transport-bun/dist/index.js`;
    expect(existsSync(dist), `${dist} is missing: run \`npm run build\` first`).toBe(true);
    expect(existsSync(BUN), `${BUN} (the bun devDependency) is missing`).toBe(true);
    expectExampleOutput(await run(BUN, ['examples/bun.ts']));
  }, 60_000);

  it('deno run --allow-net --allow-env --allow-read examples/deno.ts', async () => {
    expect(existsSync(DENO), `${DENO} (the deno devDependency) is missing`).toBe(true);
    expectExampleOutput(
      await run(DENO, ['run', '--allow-net', '--allow-env', '--allow-read', 'examples/deno.ts']),
    );
  }, 60_000);
});
