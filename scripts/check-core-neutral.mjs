// Fails when packages/core/src imports a runtime module or touches a runtime global: core must run
// on web-standard APIs alone (Node, Bun, Deno, browsers).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../packages/core/src/', import.meta.url).pathname;
const banned = [
  [/\bfrom\s+['"](node:|bun:|npm:|jsr:)/, 'runtime import'],
  [/\bimport\(\s*['"](node:|bun:)/, 'runtime import'],
  [/\brequire\(/, 'require()'],
  [/\bBuffer\b/, 'Buffer'],
  [/\bprocess\./, 'process global'],
  [/\b(Deno|Bun)\./, 'runtime global'],
  [/\b(setTimeout|setInterval|setImmediate)\(/, 'timer'],
];
const allowedPackages = new Set(['@noble/hashes', '@peculiar/asn1-x509', '@peculiar/asn1-schema', 'asn1js']);
const problems = [];
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.ts')) {
      const lines = readFileSync(p, 'utf8').split('\n');
      lines.forEach((line, i) => {
        if (/^\s*(\/\/|\*)/.test(line)) return;
        for (const [re, what] of banned) {
          // connection.ts / server-connection.ts own the connect and authentication timeouts; nothing else may.
          if (what === 'timer' && /\/(server-)?connection\.ts$/.test(p)) continue;
          if (re.test(line)) problems.push(`${p}:${i + 1}: ${what}: ${line.trim()}`);
        }
        const m = line.match(/\bfrom\s+['"]([^'".][^'"]*)['"]/);
        if (m) {
          const pkg = m[1].startsWith('@') ? m[1].split('/').slice(0, 2).join('/') : m[1].split('/')[0];
          if (!allowedPackages.has(pkg)) problems.push(`${p}:${i + 1}: package not allowed in core: ${m[1]}`);
        }
      });
    }
  }
};
walk(root);
if (problems.length) {
  console.error(`core must stay runtime-neutral:\n${problems.join('\n')}`);
  process.exit(1);
}
console.log('core is runtime-neutral: no runtime imports or globals in packages/core/src');
