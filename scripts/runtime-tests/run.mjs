#!/usr/bin/env node
// Runs the core's unit tests (packages/core/test/**/*.test.ts, the same files vitest runs on Node) on Bun or
// on Deno:   node scripts/runtime-tests/run.mjs bun|deno
//
// The test files import describe/it/expect from 'vitest'; here 'vitest' is a shim:
//   bun:  bun-preload.ts (bun test --preload) mock.module()s 'vitest' to Bun's own bun:test runner;
//   deno: deno-import-map.json maps 'vitest' to deno-vitest.ts (Deno.test + vitest's own @vitest/expect).
// shims.test.ts runs first and proves the shim asserts (a shim whose expect never throws would pass
// everything) and that it.each/describe.each titles are formatted. Every test file left out is listed
// with its reason. Prints `<runtime>: N passed, N failed` and exits non-zero on any failure.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const testDir = join(repo, 'packages/core/test');
const runtime = process.argv[2];
const TIME_LIMIT_MS = 180_000;

/** Files a runtime cannot run, with the reason (file path relative to packages/core/test). */
const EXCLUDED = {
  bun: {},
  deno: {},
};

if (runtime !== 'bun' && runtime !== 'deno') {
  console.error('usage: node scripts/runtime-tests/run.mjs bun|deno');
  process.exit(2);
}

const bin = join(repo, 'node_modules/.bin', runtime);
const commands = {
  bun: (files) => [bin, ['test', '--preload', join(here, 'bun-preload.ts'), ...files]],
  deno: (files) => [
    bin,
    [
      'test',
      // Only this folder's import map: none of the repository's deno.json files, no lock file; npm packages
      // come from the node_modules that npm installed (fast-check, chai, @vitest/expect, core's dependencies).
      '--no-config',
      '--no-lock',
      '--node-modules-dir=manual',
      `--import-map=${join(here, 'deno-import-map.json')}`,
      // tsc type-checks these files already (against vitest's types, which the shim does not reproduce).
      '--no-check',
      // fast-check settings (FC_SEED, FC_RANDOM), certificates made with the openssl CLI in a temporary folder.
      '--allow-env',
      '--allow-read',
      `--allow-write=${tmpdir()}`,
      '--allow-run=openssl',
      ...files,
    ],
  ],
};

// Lines of passing tests (and blank lines): kept in the captured output, left out of the log.
const passLine = { bun: /^\(pass\) |^\s*$/, deno: / \.\.\. ok \(|^\s*$/ };

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour sequences
const plain = (text) => text.replace(/\x1b\[[0-9;]*m/g, '');

function run(files) {
  const [cmd, args] = commands[runtime](files);
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: repo, env: { ...process.env, NO_COLOR: '1' } });
    let output = '';
    let pending = '';
    const onData = (chunk) => {
      const text = chunk.toString();
      output += text;
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const line of lines) if (!passLine[runtime].test(plain(line))) console.log(line);
    };
    child.on('error', (error) => {
      console.log(`${runtime}: cannot start ${cmd}: ${error.message}`);
    });
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => {
      console.log(`${runtime}: killed after ${TIME_LIMIT_MS / 1000} s`);
      child.kill('SIGKILL');
    }, TIME_LIMIT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (pending && !passLine[runtime].test(plain(pending))) console.log(pending);
      resolve({ code: code ?? signal, output: plain(output) });
    });
  });
}

function counts(output) {
  if (runtime === 'bun') {
    const passed = /^\s*(\d+) pass$/m.exec(output);
    const failed = /^\s*(\d+) fail$/m.exec(output);
    return passed && failed ? { passed: Number(passed[1]), failed: Number(failed[1]) } : undefined;
  }
  const m = /^(?:ok|FAILED) \| (\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/m.exec(output);
  return m ? { passed: Number(m[1]), failed: Number(m[2]) } : undefined;
}

const all = walk(testDir)
  .filter((p) => p.endsWith('.test.ts'))
  .map((p) => relative(testDir, p))
  .sort();
const excluded = new Map(Object.entries(EXCLUDED[runtime]));
for (const file of all) {
  // @pgconn/testkit starts PostgreSQL servers and makes certificates: integration tests, not unit tests.
  if (!excluded.has(file) && /from ['"]@pgconn\/testkit/.test(readFileSync(join(testDir, file), 'utf8'))) {
    excluded.set(file, 'imports @pgconn/testkit (needs PostgreSQL servers)');
  }
}
for (const file of excluded.keys()) {
  if (!all.includes(file)) console.log(`${runtime}: EXCLUDED lists ${file}, which does not exist`);
}
const files = all.filter((f) => !excluded.has(f));
let ok = true;

console.log(`--- ${runtime}: shim self-check (scripts/runtime-tests/shims.test.ts)`);
const check = await run([join(here, 'shims.test.ts')]);
const checkCounts = counts(check.output);
const titles = [
  'each title a 1',
  'each title b 2',
  'each scalar "solo"',
  'describe.each outer 3 > gets the row',
];
const missing = titles.filter((t) => !check.output.includes(t));
if (
  check.code !== 0 ||
  !checkCounts ||
  checkCounts.failed > 0 ||
  checkCounts.passed === 0 ||
  missing.length
) {
  ok = false;
  if (missing.length) console.log(`${runtime}: test titles not found in the report: ${missing.join(', ')}`);
}
console.log(
  `${runtime} shim self-check: ${checkCounts ? `${checkCounts.passed} passed, ${checkCounts.failed} failed` : 'no result'}`,
);

console.log(`--- ${runtime}: ${files.length} core test files`);
const started = Date.now();
const core = await run(files.map((f) => join(testDir, f)));
const coreCounts = counts(core.output);
if (core.code !== 0 || !coreCounts || coreCounts.failed > 0 || coreCounts.passed === 0) ok = false;
for (const [file, reason] of excluded)
  console.log(`${runtime}: excluded packages/core/test/${file}: ${reason}`);
if (excluded.size === 0) console.log(`${runtime}: no test file excluded`);
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(
  coreCounts
    ? `${runtime}: ${coreCounts.passed} passed, ${coreCounts.failed} failed (${files.length} files, ${excluded.size} excluded, ${seconds} s)`
    : `${runtime}: no test summary found (exit ${core.code})`,
);
process.exit(ok ? 0 : 1);
