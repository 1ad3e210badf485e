/** The per-runtime results table (plain text, for CI logs). */
import type { CheckResult } from './suite.ts';

/** Prefix of the runner's machine-readable result line. */
export const JSON_MARKER = '@@conformance-json@@';

const LABEL: Record<CheckResult['status'], string> = {
  pass: 'pass',
  fail: 'FAIL',
  unsupported: 'unsupported',
};

const oneLine = (s: string, max: number): string => {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
};

export function formatTable(title: string, results: readonly CheckResult[], detailWidth = 120): string {
  const rows = results.map((r) => [r.id, LABEL[r.status], oneLine(r.detail, detailWidth)] as const);
  const w0 = Math.max(5, ...rows.map((r) => r[0].length));
  const w1 = Math.max(6, ...rows.map((r) => r[1].length));
  const line = (a: string, b: string, c: string) => `| ${a.padEnd(w0)} | ${b.padEnd(w1)} | ${c}`;
  const count = (s: CheckResult['status']) => results.filter((r) => r.status === s).length;
  const ms = results.reduce((n, r) => n + r.ms, 0);
  return [
    `conformance: ${title}`,
    line('check', 'result', 'detail'),
    line('-'.repeat(w0), '-'.repeat(w1), '------'),
    ...rows.map((r) => line(...r)),
    `${count('pass')} passed, ${count('fail')} failed, ${count('unsupported')} not supported by the runtime (${(ms / 1000).toFixed(1)} s)`,
  ].join('\n');
}
