// What npm and JSR would get from each publishable package, checked on the `npm run build` output:
//   - npm: publint (every message, suggestions included, is a failure) and @arethetypeswrong/cli
//     (`attw --pack`: ESM + CJS + types resolve under node10, node16 from CJS and ESM, and bundlers);
//   - metadata: description, keywords, license, engines, publishConfig.access, types-first exports;
//   - JSR (library packages): deno.json name/version match package.json, its `imports` carry the
//     package.json dependency ranges, and `deno publish --dry-run` passes. Its debug log shows how each
//     bare specifier is rewritten for JSR; a rewrite to a relative path leaving the package would
//     publish a package importing files it does not contain, so that fails too.
//
//   node scripts/check-packages.mjs                  after `npm run build`; exits 1 on any problem
//   node scripts/check-packages.mjs --sync-versions  after `npx changeset version`: copies each
//                                                    package.json version into its deno.json
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { publint } from 'publint';
import { formatMessage } from 'publint/utils';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name) => join(root, 'node_modules', '.bin', name);

/**
 * The publishable packages. Ignored rules need a reason here:
 *  - attwIgnore: none. The CLI ships a typed library entry (`pgconn` exports probe/serve helpers with
 *    .d.ts and .d.cts) besides its bin, so it is checked like the libraries.
 *  - slowTypes (transport-bun): BunSocket's members that take Bun's native socket types are typed with
 *    the ambient `BunNative` namespace from src/bun.d.ts (bun-types is not a dependency). JSR's fast
 *    check drops `/// <reference>` directives from its public-API declarations, so it cannot resolve
 *    that namespace and needs --allow-slow-types. Those members are @internal (stripped from the npm
 *    .d.ts); making the namespace an exported module type would lift this.
 */
const PACKAGES = [
  { dir: 'packages/core', jsr: true },
  { dir: 'packages/transport-node', jsr: true },
  { dir: 'packages/transport-bun', jsr: true, slowTypes: true },
  { dir: 'packages/transport-deno', jsr: true },
  // The CLI is a Node program with a bin: npm only.
  { dir: 'packages/cli', jsr: false },
];

/**
 * JSR rewrites that leave the package, accepted for now with a warning (not a failure). Each entry
 * names the owner's fix; the script says when an entry is no longer needed.
 */
const KNOWN_ESCAPES = {};

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));
const env = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', DENO_NO_UPDATE_CHECK: '1' };
const run = (cmd, args, cwd) =>
  spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });

if (process.argv.includes('--sync-versions')) {
  for (const { dir, jsr } of PACKAGES) {
    if (!jsr) continue;
    const { version } = readJson(join(root, dir, 'package.json'));
    const denoJson = join(root, dir, 'deno.json');
    const text = readFileSync(denoJson, 'utf8');
    writeFileSync(denoJson, text.replace(/"version":\s*"[^"]*"/, `"version": "${version}"`));
    console.log(`${dir}/deno.json: version ${version}`);
  }
  process.exit(0);
}

let failed = false;
const results = [];

/** Metadata publint does not insist on but a first release needs. */
function checkMetadata(pkg) {
  const problems = [];
  for (const field of ['description', 'license', 'engines']) if (!pkg[field]) problems.push(`no "${field}"`);
  if (!pkg.keywords?.length) problems.push('no "keywords"');
  if (pkg.private) problems.push('"private": true');
  if (pkg.name.startsWith('@') && pkg.publishConfig?.access !== 'public')
    problems.push('scoped package without "publishConfig": { "access": "public" }');
  for (const [subpath, target] of Object.entries(pkg.exports ?? {})) {
    if (typeof target !== 'object') continue;
    for (const [condition, value] of Object.entries(target)) {
      if (typeof value === 'object' && Object.keys(value)[0] !== 'types')
        problems.push(`exports["${subpath}"].${condition}: "types" must come first`);
    }
  }
  return problems;
}

/** deno.json against package.json: same name and version, dependencies mapped with the same range. */
function checkJsrConfig(dir, pkg) {
  const problems = [];
  const path = join(root, dir, 'deno.json');
  if (!existsSync(path)) return [`${dir}/deno.json is missing`];
  const deno = readJson(path);
  if (deno.name !== pkg.name) problems.push(`deno.json name ${deno.name} ≠ package.json ${pkg.name}`);
  if (deno.version !== pkg.version)
    problems.push(
      `deno.json version ${deno.version} ≠ package.json ${pkg.version} (run node scripts/check-packages.mjs --sync-versions)`,
    );
  if (deno.exports !== './src/index.ts') problems.push('deno.json exports is not "./src/index.ts"');
  if (!deno.publish?.include?.length) problems.push('deno.json has no publish.include');
  // Without compilerOptions Deno reads the package's tsconfig.json, whose `paths` (tsconfig.base.json)
  // map @pgconn/core to ../core/src/index.ts: `deno publish` would ship that relative import.
  if (!deno.compilerOptions)
    problems.push('deno.json has no compilerOptions (tsconfig.json paths would apply)');
  for (const [name, range] of Object.entries(pkg.dependencies ?? {})) {
    if (name.startsWith('@pgconn/')) continue; // a workspace member: jsr:@pgconn/… on publish
    const mapped = deno.imports?.[name] ?? deno.imports?.[`${name}/`];
    const expected = [`npm:${name}@${range}`, `npm:/${name}@${range}/`];
    if (!expected.includes(mapped))
      problems.push(`deno.json imports["${name}"] is ${mapped ?? 'missing'}, expected ${expected[0]}`);
  }
  return problems;
}

/** `deno publish --dry-run`; returns problems and warnings (known escapes). */
function denoPublish(dir, slowTypes) {
  const args = ['publish', '--dry-run', '--allow-dirty', '--log-level=debug'];
  if (slowTypes) args.push('--allow-slow-types');
  const r = run(bin('deno'), args, join(root, dir));
  const log = `${r.stdout}\n${r.stderr}`;
  if (r.status !== 0) {
    const tail = log
      .split('\n')
      .filter((l) => !l.startsWith('DEBUG'))
      .slice(-40)
      .join('\n');
    return { problems: [`deno publish --dry-run exited ${r.status}:\n${tail}`], warnings: [] };
  }
  const escapes = new Set();
  const pkgDir = join(root, dir);
  for (const m of log.matchAll(/Unfurled specifier: (\S+) from (file:\/\/\S+) -> (\S+)/g)) {
    const [, specifier, referrer, target] = m;
    if (!target.startsWith('.')) continue; // jsr:, npm:, node:
    const resolved = resolve(join(fileURLToPath(referrer), '..'), target);
    if (relative(pkgDir, resolved).startsWith('..'))
      escapes.add(`${specifier} → ${target} (outside the package)`);
  }
  if (escapes.size === 0) {
    const warnings = KNOWN_ESCAPES[dir]
      ? [`KNOWN_ESCAPES["${dir}"] is no longer needed: remove it from scripts/check-packages.mjs`]
      : [];
    return { problems: [], warnings };
  }
  const found = [...escapes].join('; ');
  if (KNOWN_ESCAPES[dir]) return { problems: [], warnings: [`${found} — known: ${KNOWN_ESCAPES[dir]}`] };
  return { problems: [`JSR would publish imports leaving the package: ${found}`], warnings: [] };
}

for (const { dir, jsr, slowTypes } of PACKAGES) {
  const pkgDir = join(root, dir);
  const pkg = readJson(join(pkgDir, 'package.json'));
  const problems = [];
  const warnings = [];
  const line = { package: pkg.name, publint: '-', attw: '-', jsr: jsr ? '-' : 'n/a (npm only)' };

  if (!existsSync(join(pkgDir, 'dist'))) {
    problems.push(`${dir}/dist is missing: run \`npm run build\` first`);
  } else {
    const { messages } = await publint({ pkgDir, pack: 'npm', strict: true });
    line.publint = messages.length ? `${messages.length} message(s)` : 'clean';
    for (const m of messages) problems.push(`publint ${m.type}: ${formatMessage(m, pkg) ?? m.code}`);

    const attw = run(bin('attw'), ['--pack', '.', '--format', 'json'], pkgDir);
    let kinds = [];
    try {
      const report = JSON.parse(attw.stdout);
      kinds = (report.analysis?.problems ?? []).map(
        (p) => `${p.kind} (${p.entrypoint ?? ''} ${p.resolutionKind ?? ''})`,
      );
    } catch {
      kinds = [`unreadable output: ${attw.stderr || attw.stdout}`];
    }
    if (attw.status !== 0 && kinds.length === 0) kinds.push(`exited ${attw.status}: ${attw.stderr}`);
    line.attw = kinds.length ? `${kinds.length} problem(s)` : 'clean';
    for (const k of kinds) problems.push(`attw: ${k}`);
  }

  for (const p of checkMetadata(pkg)) problems.push(`package.json: ${p}`);

  if (jsr) {
    const config = checkJsrConfig(dir, pkg);
    problems.push(...config);
    const dry = denoPublish(dir, slowTypes);
    problems.push(...dry.problems);
    warnings.push(...dry.warnings);
    line.jsr =
      config.length + dry.problems.length
        ? 'FAILED'
        : `dry-run ok${slowTypes ? ' (--allow-slow-types)' : ''}${dry.warnings.length ? ', warning' : ''}`;
  }

  results.push(line);
  if (problems.length) failed = true;
  for (const p of problems) console.error(`✗ ${pkg.name}: ${p}`);
  for (const w of warnings) console.warn(`! ${pkg.name}: ${w}`);
}

console.table(results);
if (failed) {
  console.error('package checks failed');
  process.exit(1);
}
console.log('package checks passed');
