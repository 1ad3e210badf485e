/**
 * Ratios, target verdicts and the three outputs: report.md (embeds chart.svg), report.json, chart.svg.
 * The chart is drawn here (horizontal bars with min–max whiskers); no dependency.
 */
import type { Runtime } from './jobs.ts';
import {
  type BenchConfig,
  type Figure,
  type Mode,
  type Report,
  RUNTIMES,
  type TargetStatus,
  WARMUP_DIVISOR,
} from './model.ts';
import { fmtNum, fmtRate, fmtRatio } from './stats.ts';
import { handshakeLabel, NO_KEY_CACHE } from './suite.ts';

/* ---------------------------------------------------------------------------------------------- */
/* Ratios                                                                                          */
/* ---------------------------------------------------------------------------------------------- */

const ok = (f: Figure | undefined): f is Figure & { value: NonNullable<Figure['value']> } =>
  !!f && f.status === 'ok' && !!f.value && Number.isFinite(f.value.median) && f.value.median > 0;

function find(figs: readonly Figure[], q: Partial<Figure>): Figure | undefined {
  return figs.find((f) =>
    Object.entries(q).every(([k, v]) => (f as unknown as Record<string, unknown>)[k] === v),
  );
}

const ratio = (a: Figure, b: Figure | undefined): number | null =>
  ok(a) && ok(b) ? a.value.median / b.value.median : null;

/** The client runtime whose peers (pg, postgres.js) a figure is compared with. */
const peerRuntime = (f: Figure): Runtime => (f.runtime === 'native' ? 'node' : f.runtime);

/** How the report names the warm-up's share of the volume. */
const WARMUP_SHARE = `1/${WARMUP_DIVISOR}`;

/**
 * Ceiling figures by runtime, direction, then mode: they are measured per direction and mode (inside
 * the `pgconn serve` groups of the COPY sections), not in the order the table shows them.
 */
function sortCeiling(figs: Figure[]): Figure[] {
  const key = (f: Figure) =>
    RUNTIMES.indexOf(f.runtime as Runtime) * 4 +
    (f.client === 'raw read' ? 0 : 2) +
    (f.mode === 'plain' ? 0 : 1);
  return [...figs].sort((a, b) => key(a) - key(b));
}

export function ceilingFor(figs: readonly Figure[], f: Figure): Figure | undefined {
  if (f.runtime === 'native') return undefined;
  const dir = f.section === 'write' ? 'write' : 'read';
  return find(figs, {
    section: 'ceiling',
    runtime: f.runtime,
    client: `raw ${dir}`,
    mode: f.mode === 'plain' ? 'plain' : 'tls',
  });
}

export function peerFor(figs: readonly Figure[], f: Figure, peer: string): Figure | undefined {
  if (peer === 'libpq') {
    const client = f.section.startsWith('handshake') ? 'libpq (pgbench -C)' : 'libpq (psql)';
    return find(figs, { section: f.section, runtime: 'native', server: f.server, client, mode: f.mode });
  }
  return find(figs, {
    section: f.section,
    runtime: peerRuntime(f),
    server: f.server,
    client: peer,
    mode: f.mode,
  });
}

export function computeRatios(figs: Figure[]): void {
  for (const f of figs) {
    if (!ok(f)) continue;
    const r: Record<string, number | null> = {};
    if (f.section === 'read' || f.section === 'write') {
      r.ceiling = ratio(f, ceilingFor(figs, f));
      for (const p of ['pg', 'postgres.js', 'libpq']) r[p] = ratio(f, peerFor(figs, f, p));
    } else if (f.section === 'handshake' || f.section === 'handshake-link') {
      for (const p of ['pg', 'postgres.js', 'libpq']) r[p] = ratio(f, peerFor(figs, f, p));
      if (f.mode === 'tls-direct')
        r.sslrequest = ratio(
          f,
          find(figs, { section: f.section, runtime: f.runtime, client: f.client, mode: 'tls' }),
        );
    } else if (f.section === 'server') {
      const same = (server: string) =>
        figs.find((g) => g.section === 'server' && g.unit === f.unit && g.server.startsWith(server));
      r.PgBouncer = ratio(f, same('PgBouncer'));
      r['pg-gateway'] = ratio(f, same('pg-gateway'));
    } else if (f.section === 'memory') {
      for (const p of ['pg', 'postgres.js'])
        r[p] = ratio(f, find(figs, { section: 'memory', runtime: f.runtime, client: p }));
    } else if (f.section === 'ceiling') {
      r.ceiling = 1;
    }
    f.ratios = r;
  }
}

/* ---------------------------------------------------------------------------------------------- */
/* Targets                                                                                         */
/* ---------------------------------------------------------------------------------------------- */

export function evaluateTargets(
  figs: readonly Figure[],
  cfg: BenchConfig,
  runtimes: readonly Runtime[],
): TargetStatus[] {
  const out: TargetStatus[] = [];
  const quick = cfg.quick ? ' (quick mode: tiny volumes, one run — indicative only, no verdict)' : '';
  const verdict = (pass: boolean): TargetStatus['status'] =>
    cfg.quick ? 'not measured' : pass ? 'PASS' : 'MISS';
  const missing = (id: string, target: string, why: string) =>
    out.push({ id, target, status: 'not measured', detail: why });

  for (const rt of runtimes) {
    // 1. secure_read from our own server ≥ 0.90 × raw TLS read.
    {
      const id = `read-vs-ceiling/${rt}`;
      const target = `${rt}: secure_read from pgconn serve (TLS) ≥ 0.90× raw TLS socket read`;
      const f = find(figs, {
        section: 'read',
        runtime: rt,
        server: 'pgconn serve',
        client: 'pgconn',
        mode: 'tls',
      });
      const c = f && ceilingFor(figs, f);
      if (!ok(f) || !ok(c))
        missing(id, target, `not measured: ${f?.reason ?? c?.reason ?? 'section not run'}`);
      else {
        const x = f.value.median / c.value.median;
        out.push({
          id,
          target,
          status: verdict(x >= 0.9),
          detail: `${fmtRatio(x)} (${fmtRate(f.value.median)} vs ${fmtRate(c.value.median)} MB/s)${quick}`,
        });
      }
    }
    // 2. read and write against real PostgreSQL: ≥ 1.0× libpq, ≥ 1.25× the faster of pg and postgres.js.
    for (const section of ['read', 'write'] as const) {
      for (const v of cfg.pgVersions) {
        const server = `PostgreSQL ${v}`;
        const f = find(figs, { section, runtime: rt, server, client: 'pgconn', mode: 'tls' });
        const name = section === 'read' ? 'secure_read' : 'secure_write';
        const lib = f && peerFor(figs, f, 'libpq');
        {
          const id = `${section}-vs-libpq/${rt}/pg${v}`;
          const target = `${rt}: ${name} from ${server} (TLS) ≥ 1.0× libpq (psql)`;
          if (!ok(f) || !ok(lib))
            missing(id, target, `not measured: ${f?.reason ?? lib?.reason ?? 'section not run'}`);
          else {
            const x = f.value.median / lib.value.median;
            out.push({
              id,
              target,
              status: verdict(x >= 1.0),
              detail: `${fmtRatio(x)} (${fmtRate(f.value.median)} vs ${fmtRate(lib.value.median)} MB/s)${quick}`,
            });
          }
        }
        {
          const id = `${section}-vs-drivers/${rt}/pg${v}`;
          const target = `${rt}: ${name} from ${server} (TLS) ≥ 1.25× the faster of pg and postgres.js on ${rt}`;
          const peers = f
            ? (['pg', 'postgres.js'].map((p) => peerFor(figs, f, p)).filter(ok) as (Figure & {
                value: NonNullable<Figure['value']>;
              })[])
            : [];
          if (!ok(f) || peers.length === 0) {
            const why = !cfg.peerRuntimes.includes(rt)
              ? `pg and postgres.js not run on ${rt} (--peer-runtimes)`
              : (f?.reason ?? 'peer figures missing');
            missing(id, target, `not measured: ${why}`);
          } else {
            const best = peers.reduce((a, b) => (a.value.median >= b.value.median ? a : b));
            const x = f.value.median / best.value.median;
            out.push({
              id,
              target,
              status: verdict(x >= 1.25),
              detail: `${fmtRatio(x)} vs ${best.client} (${fmtRate(f.value.median)} vs ${fmtRate(best.value.median)} MB/s)${quick}`,
            });
          }
        }
      }
    }
    // 3. Client handshakes ≥ 1.2× the faster of pg and postgres.js; direct TLS measurably faster.
    for (const mode of ['plain', 'tls'] as Mode[]) {
      const id = `handshake-vs-drivers/${rt}/${mode}`;
      const target = `${rt}: client handshakes/s, ${handshakeLabel(mode)}, ≥ 1.2× the faster of pg and postgres.js`;
      const f = find(figs, { section: 'handshake', runtime: rt, client: 'pgconn', mode });
      const peers = f
        ? (['pg', 'postgres.js'].map((p) => peerFor(figs, f, p)).filter(ok) as (Figure & {
            value: NonNullable<Figure['value']>;
          })[])
        : [];
      if (!ok(f) || peers.length === 0) {
        const why = !cfg.peerRuntimes.includes(rt)
          ? `pg and postgres.js not run on ${rt}`
          : (f?.reason ?? 'peer figures missing');
        missing(id, target, `not measured: ${why}`);
      } else {
        const best = peers.reduce((a, b) => (a.value.median >= b.value.median ? a : b));
        const x = f.value.median / best.value.median;
        const bare = find(figs, { section: 'handshake', runtime: rt, client: NO_KEY_CACHE, mode });
        const without = ok(bare)
          ? `; ${NO_KEY_CACHE}: ${fmtRatio(bare.value.median / best.value.median)} (${fmtRate(bare.value.median)} conn/s)`
          : '';
        out.push({
          id,
          target,
          status: verdict(x >= 1.2),
          detail: `${fmtRatio(x)} vs ${best.client} (${fmtRate(f.value.median)} vs ${fmtRate(best.value.median)} conn/s)${without}${quick}`,
        });
      }
    }
    {
      const id = `direct-tls/${rt}`;
      const target = `${rt}: direct TLS handshakes measurably faster than SSLRequest (higher conn/s median and lower p50)`;
      // Judged over the link with a round-trip time (the round trip is what direct TLS saves); on
      // bare loopback only when the link rows are missing.
      const pick = (mode: Mode) =>
        find(figs, { section: 'handshake-link', runtime: rt, client: 'pgconn', mode }) ??
        find(figs, { section: 'handshake', runtime: rt, client: 'pgconn', mode });
      const d = pick('tls-direct');
      const s = pick('tls');
      if (!ok(d) || !ok(s) || !d.latency || !s.latency)
        missing(id, target, `not measured: ${d?.reason ?? s?.reason ?? 'section not run'}`);
      else {
        const faster = d.value.median > s.value.median && d.latency.p50 < s.latency.p50;
        out.push({
          id,
          target,
          status: verdict(faster),
          detail: `${d.server}: direct ${fmtRate(d.value.median)} conn/s, p50 ${d.latency.p50.toFixed(2)} ms; SSLRequest ${fmtRate(s.value.median)} conn/s, p50 ${s.latency.p50.toFixed(2)} ms (${fmtRatio(d.value.median / s.value.median)})${quick}`,
        });
      }
    }
    // 5. Peak RSS above idle with a slow consumer < 64 MiB.
    {
      const id = `memory/${rt}`;
      const target = `${rt}: peak RSS while streaming ${cfg.quick ? 'the quick volume' : '1 GiB'} to a slow consumer < 64 MiB above idle`;
      const f = find(figs, { section: 'memory', runtime: rt, client: 'pgconn' });
      if (!ok(f) && !(f && f.status === 'ok' && f.value))
        missing(id, target, `not measured: ${f?.reason ?? 'section not run'}`);
      else {
        const v = f.value!.median;
        out.push({ id, target, status: verdict(v < 64), detail: `${v.toFixed(1)} MiB above idle${quick}` });
      }
    }
  }
  // 4. Server handshakes and idle memory (pgconn serve per runtime).
  const serverFig = (unit: 'conn/s' | 'KiB/conn') => (server: string, rt?: Figure['runtime']) =>
    figs.find(
      (g) =>
        g.section === 'server' &&
        g.unit === unit &&
        g.server.startsWith(server) &&
        (rt === undefined || g.runtime === rt),
    );
  const rateOf = serverFig('conn/s');
  const memOf = serverFig('KiB/conn');
  for (const rt of runtimes) {
    const ours = rateOf('pgconn serve', rt);
    const bouncer = rateOf('PgBouncer');
    const gateway = rateOf('pg-gateway');
    const t1 = {
      id: `server-vs-pgbouncer/${rt}`,
      target: `pgconn serve on ${rt}: TLS+SCRAM handshakes/s ≥ 1.0× PgBouncer`,
    };
    if (!ok(ours) || !ok(bouncer))
      missing(t1.id, t1.target, `not measured: ${ours?.reason ?? bouncer?.reason ?? 'section not run'}`);
    else {
      const x = ours.value.median / bouncer.value.median;
      const cpu = (f: Figure | undefined) => (f?.serverCpuMs === undefined ? '?' : f.serverCpuMs.toFixed(2));
      const floor = rateOf('runtime floor', rt);
      // Server CPU says what the rate costs (pgbench shares the cores); the floor what this runtime's TLS alone costs.
      const cpus =
        ours.serverCpuMs === undefined
          ? ''
          : `; server CPU per handshake ${cpu(ours)} ms vs PgBouncer ${cpu(bouncer)} ms${
              ok(floor) ? `, ${rt}'s floor (its TLS server, trust, no pgconn) ${cpu(floor)} ms` : ''
            }`;
      out.push({
        ...t1,
        status: verdict(x >= 1.0),
        detail: `${fmtRatio(x)} (${fmtRate(ours.value.median)} vs ${fmtRate(bouncer.value.median)} conn/s${cpus})${quick}`,
      });
    }
    const t2 = {
      id: `server-vs-gateway/${rt}`,
      target: `pgconn serve on ${rt}: handshakes/s ≥ 2× pg-gateway`,
    };
    if (!ok(ours) || !ok(gateway))
      missing(t2.id, t2.target, `not measured: ${ours?.reason ?? gateway?.reason ?? 'section not run'}`);
    else {
      const x = ours.value.median / gateway.value.median;
      out.push({
        ...t2,
        status: verdict(x >= 2),
        detail: `${fmtRatio(x)} (${fmtRate(ours.value.median)} vs ${fmtRate(gateway.value.median)} conn/s; pg-gateway authenticates with MD5, it has no SCRAM)${quick}`,
      });
    }
    const om = memOf('pgconn serve', rt);
    const bm = memOf('PgBouncer');
    const t3 = {
      id: `server-memory/${rt}`,
      target: `pgconn serve on ${rt}: memory per idle TLS connection ≤ 2× PgBouncer's`,
    };
    if (om?.status !== 'ok' || !om.value || !bm || bm.status !== 'ok' || !bm.value)
      missing(t3.id, t3.target, `not measured: ${om?.reason ?? bm?.reason ?? 'section not run'}`);
    else {
      const x = om.value.median / Math.max(bm.value.median, 0.1);
      const fm = memOf('runtime floor', rt);
      const floor = ok(fm)
        ? `; ${rt}'s floor (its TLS server, no pgconn) ${fm.value.median.toFixed(1)} KiB`
        : '';
      out.push({
        ...t3,
        status: verdict(om.value.median <= 2 * bm.value.median),
        detail: `${om.value.median.toFixed(1)} vs ${bm.value.median.toFixed(1)} KiB per connection (${fmtRatio(x)}${floor})${quick}`,
      });
    }
  }
  return out;
}

/* ---------------------------------------------------------------------------------------------- */
/* Markdown                                                                                        */
/* ---------------------------------------------------------------------------------------------- */

const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function valueCells(f: Figure): string[] {
  if (f.status !== 'ok' || !f.value)
    return [
      f.status === 'failed' ? `**failed**: ${esc(f.reason ?? '')}` : `${f.status}: ${esc(f.reason ?? '')}`,
      '',
      '',
    ];
  const v = f.value;
  return f.value.n > 1 ? [fmtRate(v.median), fmtRate(v.min), fmtRate(v.max)] : [fmtRate(v.median), '', ''];
}

const ratioCell = (f: Figure, k: string): string => fmtRatio(f.ratios?.[k] ?? null);

function table(head: string[], rows: string[][], align?: string[]): string {
  const a = align ?? head.map((_, i) => (i === 0 ? '---' : '--:'));
  return [`| ${head.join(' | ')} |`, `|${a.join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join(
    '\n',
  );
}

const modeText = (m: Mode) => (m === 'plain' ? 'plain' : m === 'tls' ? 'TLS' : 'TLS direct');

function throughputTable(figs: Figure[]): string {
  return table(
    [
      'Server',
      'Runtime',
      'Client',
      'Mode',
      'MB/s median',
      'min',
      'max',
      'client CPU s/GB',
      '× ceiling',
      '× pg',
      '× postgres.js',
      '× libpq',
    ],
    figs.map((f) => [
      f.server,
      f.runtime,
      f.client === 'pgconn' ? '**pgconn**' : f.client,
      modeText(f.mode),
      ...valueCells(f),
      f.cpu ? f.cpu.median.toFixed(2) : '',
      ratioCell(f, 'ceiling'),
      ratioCell(f, 'pg'),
      ratioCell(f, 'postgres.js'),
      ratioCell(f, 'libpq'),
    ]),
    ['---', '---', '---', '---', '--:', '--:', '--:', '--:', '--:', '--:', '--:', '--:'],
  );
}

/** A handshake table row: runtime, client, mode, conn/s, p50/p99 latency, then the given ratios. */
function handshakeRow(f: Figure, ratios: readonly string[]): string[] {
  const p50 =
    f.latency && Number.isFinite(f.latency.p50)
      ? f.latency.p50.toFixed(2)
      : f.latency
        ? `mean ${f.latency.mean.toFixed(2)}`
        : '';
  return [
    f.runtime,
    f.client === 'pgconn' ? '**pgconn**' : f.client,
    handshakeLabel(f.mode),
    ...valueCells(f),
    p50,
    f.latency && Number.isFinite(f.latency.p99) ? f.latency.p99.toFixed(2) : '',
    ...ratios.map((r) => ratioCell(f, r)),
  ];
}

/** A handshake table: the common columns, then one ratio column per [ratio key, header]. */
function handshakeTable(figs: readonly Figure[], ratios: readonly (readonly [string, string])[]): string {
  return table(
    [
      'Runtime',
      'Client',
      'Mode',
      'conn/s median',
      'min',
      'max',
      'p50 ms',
      'p99 ms',
      ...ratios.map((r) => r[1]),
    ],
    figs.map((f) =>
      handshakeRow(
        f,
        ratios.map((r) => r[0]),
      ),
    ),
    ['---', '---', '---', '--:', '--:', '--:', '--:', '--:', ...ratios.map(() => '--:')],
  );
}

export function toMarkdown(r: Report): string {
  const m = r.machine;
  const c = r.config;
  const by = (s: Figure['section']) => r.figures.filter((f) => f.section === s);
  const out: string[] = [];
  const volume = (rows: number) =>
    `${fmtNum(rows)} rows × ${c.rowWidth + 1} B = ${fmtNum((rows * (c.rowWidth + 1)) / 1e6, 1)} MB`;
  out.push(`# pgconn throughput bench${c.quick ? ' (quick mode)' : ''}`);
  out.push('');
  out.push(
    `${m.date} · ${r.elapsedSeconds.toFixed(0)} s · \`${c.quick ? 'npm run bench:quick' : 'npm run bench'}\` (\`node apps/bench/dist/throughput.js${c.quick ? ' --quick' : ''}\`)`,
  );
  out.push('');
  out.push(
    `> **Shared cores.** These figures were taken on a ${m.cores}-core machine (load average ${m.loadavgStart.join(' ')} at the start, ${m.loadavgEnd.join(' ')} at the end) where the client, the server and PostgreSQL compete for the same cores. Absolute MB/s move by tens of percent between runs; the ratios, taken in the same run, are the meaningful part.${c.quick ? ' Quick mode: tiny volumes and one run — a smoke test, not a measurement.' : ''}`,
  );
  out.push('');
  out.push(
    table(
      ['Machine', ''],
      [
        ['CPU', `${m.cpu}, ${m.cores} cores, ${m.memory}`],
        ['OS', m.os],
        ...Object.entries(m.runtimes).map(([k, v]) => [k, v]),
        ['TLS', m.tls],
        ['libpq', m.libpq],
        ...Object.entries(m.postgres).map(([k, v]) => [k, v]),
        ['PgBouncer', m.pgbouncer],
        [
          'Volumes',
          `read ${volume(c.readRows)}; write ${volume(c.writeRows)}; ceiling ${fmtNum(c.rawBytes / 1e6, 1)} MB in ${c.chunk / 1024} KiB chunks; ${c.runs} timed run${c.runs > 1 ? 's' : ''} per figure${c.warmup ? ` after a warm-up run (${WARMUP_SHARE} volume)` : ', no warm-up'}`,
        ],
      ],
      ['---', '---'],
    ),
  );
  out.push('');
  out.push('![throughput chart](chart.svg)');
  out.push('');
  out.push('## Targets (issue 9)');
  out.push('');
  out.push(
    table(
      ['Target', 'Status', 'Detail'],
      r.targets.map((t) => [
        esc(t.target),
        t.status === 'PASS' ? '**PASS**' : t.status === 'MISS' ? '**MISS**' : t.status,
        esc(t.detail),
      ]),
      ['---', '---', '---'],
    ),
  );
  out.push('');

  out.push('## 3. The ceiling: raw loopback sockets');
  out.push('');
  out.push(
    `Two processes: the runtime under test (client) and a Node server (\`throughput-rawserver.js\`); the same certificate (EC P-256) and cipher as every TLS row, ${c.chunk / 1024} KiB writes, 'data' events counted. No PostgreSQL client on that runtime can beat these. With sections 1 and 2, each direction and mode is measured in the same interleaved rounds as the \`pgconn serve\` rows of that direction and mode, so their ratios compare figures taken side by side.`,
  );
  out.push('');
  out.push(
    table(
      ['Runtime', 'Direction', 'Mode', 'MB/s median', 'min', 'max', 'client CPU s/GB'],
      sortCeiling(by('ceiling')).map((f) => [
        f.runtime,
        f.client.replace('raw ', ''),
        modeText(f.mode),
        ...valueCells(f),
        f.cpu ? f.cpu.median.toFixed(2) : '',
      ]),
      ['---', '---', '---', '--:', '--:', '--:', '--:'],
    ),
  );
  out.push('');
  out.push("## 1. secure_read: `COPY (SELECT repeat('x', 1000) FROM generate_series(1, N)) TO STDOUT`");
  out.push('');
  out.push(
    'Ratios: this row ÷ the raw socket read of the same runtime and mode, and ÷ each peer on the same server, runtime and mode.',
  );
  out.push('');
  out.push(throughputTable(by('read')));
  out.push('');
  out.push(
    "## 2. secure_write: `COPY t FROM STDIN` (UNLOGGED table, truncated before each run; `pgconn serve`'s sink counts rows)",
  );
  out.push('');
  out.push(throughputTable(by('write')));
  out.push('');
  out.push(
    `## 5. Client handshakes: connect to ReadyForQuery, then close (PostgreSQL ${c.pgVersions.includes(18) ? 18 : c.pgVersions[0]})`,
  );
  out.push('');
  out.push(
    `${c.handshakes} sequential connections per run; conn/s counts open + close; latency is connect → ReadyForQuery. Plaintext rows use a trust role, TLS rows SCRAM-SHA-256 with sslmode=verify-full. pgconn keeps the SCRAM keys it derived (RFC 5802 §5.1: PostgreSQL sends the same salt until the password changes), so after the warm-up its TLS rows skip PBKDF2; pg, postgres.js and libpq derive the keys on every connection. The "${NO_KEY_CACHE}" rows are pgconn with \`scramKeyCache: null\`, deriving them every time as well.`,
  );
  out.push('');
  out.push(
    handshakeTable(by('handshake'), [
      ['pg', '× pg'],
      ['postgres.js', '× postgres.js'],
      ['libpq', '× libpq'],
      ['sslrequest', '× SSLRequest'],
    ]),
  );
  out.push('');
  if (by('handshake-link').length) {
    out.push(
      `### 5b. Direct TLS vs SSLRequest over a link with latency (${by('handshake-link')[0]!.server})`,
    );
    out.push('');
    out.push(
      `The same handshakes through a loopback proxy that delays every chunk by half the round-trip time in each direction. On bare loopback the round trip direct TLS saves is tens of microseconds, inside a handshake's run-to-run spread (section 5); across a network it is what the feature is for. TLS + SCRAM, sslmode=verify-full.`,
    );
    out.push('');
    out.push(
      handshakeTable(by('handshake-link'), [
        ['libpq', '× libpq'],
        ['sslrequest', '× SSLRequest'],
      ]),
    );
    out.push('');
  }
  out.push('## 6. Server side: TLS + SCRAM handshakes accepted, memory per idle TLS connection');
  out.push('');
  out.push(
    `Driver: \`pgbench -C\` (libpq 18, ${c.serverClients} clients, a script of one meta-command, so each transaction is one connection to ReadyForQuery and nothing else), sslmode=verify-full, SCRAM-SHA-256. Logging as PgBouncer's defaults do (a line per login and per disconnection): \`pgconn serve --log connections\`. Memory: the server's RSS before and after ${c.idleConnections} idle TLS+SCRAM connections opened by pgconn's client, divided by the count; every round in a fresh process of that server, after 4 connections to warm it (the notes give the median round's RSS).`,
  );
  out.push('');
  out.push(
    "Runtime floor rows: each runtime's cheapest TLS server (Bun: `Bun.listen` + `upgradeTLS`; Node and Deno: `node:net` + `node:tls`) answering SSLRequest, the StartupMessage (trust: AuthenticationOk, ReadyForQuery at once) and Terminate, with no pgconn code (`src/throughput-floorserver.ts`). It does less than any real server (no SCRAM round trips), so its server CPU per handshake and memory per idle connection are lower bounds for pgconn serve on that runtime; its conn/s is higher than a SCRAM server's also because pgbench skips PBKDF2.",
  );
  out.push('');
  out.push(
    table(
      [
        'Server',
        'Runtime',
        'Measure',
        'median',
        'min',
        'max',
        'unit',
        '× PgBouncer',
        '× pg-gateway',
        'Notes',
      ],
      by('server').map((f) => [
        f.server,
        f.runtime,
        f.unit === 'conn/s' ? 'handshakes' : 'idle TLS connection',
        ...valueCells(f),
        f.unit,
        ratioCell(f, 'PgBouncer'),
        ratioCell(f, 'pg-gateway'),
        esc(f.notes.join('; ')),
      ]),
      ['---', '---', '---', '--:', '--:', '--:', '---', '--:', '--:', '---'],
    ),
  );
  out.push('');
  out.push(
    `## 7. Memory: peak RSS above idle while streaming ${c.quick ? `${fmtNum(c.slowBytes / 2 ** 20)} MiB` : '1 GiB'} to a slow consumer`,
  );
  out.push('');
  out.push(
    "COPY from `pgconn serve` over TLS; the consumer sleeps 1 ms after every 256 KiB, well below the server's rate, so backpressure must hold the data in the kernel and the server, not in the client. Idle is the process after a warm-up COPY on a connection since closed; the measured connection opens after it, so its memory counts as streaming cost.",
  );
  out.push('');
  out.push(
    table(
      ['Runtime', 'Client', 'MiB above idle, median', 'min', 'max', '× pg', '× postgres.js', 'Notes'],
      by('memory').map((f) => [
        f.runtime,
        f.client === 'pgconn' ? '**pgconn**' : f.client,
        ...valueCells(f),
        ratioCell(f, 'pg'),
        ratioCell(f, 'postgres.js'),
        esc(f.notes.join('; ')),
      ]),
      ['---', '---', '--:', '--:', '--:', '--:', '--:', '---'],
    ),
  );
  out.push('');
  out.push('## 8. Codec micro-benchmark (`apps/bench/dist/codec.js`)');
  out.push('');
  if (r.codec) {
    const body = r.codec.markdown.split('\n').filter((l) => !/^# /.test(l));
    out.push(...body.map((l) => l.replace(/^## /, '### ')));
  } else out.push('not measured (see warnings).');
  out.push('');
  out.push('## Method and caveats');
  out.push('');
  out.push(
    [
      '- Every client runs in a process of its own (`dist/throughput-worker.js`) on the runtime under test; servers are separate processes; all on loopback with one certificate (EC P-256, the CA `pgconn serve --tls-dir` generates) and sslmode=verify-full.',
      `- A figure is the median of the timed runs (min and max beside it). Runs are interleaved: round r runs every row of a table once, starting at a rotating row, each in a fresh client process (connect, in full mode a warm-up COPY of ${WARMUP_SHARE} of the volume, then the timed one), so load that drifts over minutes falls on every row alike. A run is timed from the query to the last byte (read) or to CommandComplete (write), on the open connection. Every COPY TO (warm-up, timed, slow read) runs on a connection of its own, opened just before it: on Deno, pg + pg-copy-streams never receives a COPY TO that is not the first thing on a fresh connection (its paused socket gets no \`readable\` event), and on a connection postgres.js has used for a COPY TO, a second \`.readable()\` often never resolves.`,
      "- Client CPU s/GB: the client process's user + system CPU time per GB moved (median). On a shared machine it is steadier than MB/s: a client that needs more CPU per byte is slower whatever the load. psql rows have none (psql is timed by itself).",
      "- Byte counts are checked on every run (reads) and the server's row count (writes: the `COPY n` tag, and for pgconn the table's count after the last run); a mismatch fails the figure.",
      "- libpq: Debian's psql 15 `\\copy`, timed by psql's own `\\timing` (excludes process start and connection, like the other rows); `\\copy ... to '/dev/null'` and `\\copy t from FILE` (file in the page cache).",
      '- postgres.js: `sql.unsafe(copy).readable()` / `.writable()`, `fetch_types: false`; node-postgres: `pg` + `pg-copy-streams`. Both are fed the same 64 KiB chunks of whole rows as pgconn.',
      "- Handshakes: libpq via `pgbench -C` (it reports a mean connection time only, so p50/p99 are blank); PgBouncer 1.18 has no direct TLS, pg-gateway 0.2.4 no SCRAM (it runs with TLS + MD5, which costs the client less than SCRAM's PBKDF2).",
      `- Runtimes: Node always; Bun and Deno through \`@pgconn/transport-bun\` / \`@pgconn/transport-deno\` when they export their transport class, otherwise their rows read "runtime not available". Peers (pg, postgres.js) run on: ${c.peerRuntimes.join(', ')}.`,
    ].join('\n'),
  );
  if (r.warnings.length) {
    out.push('');
    out.push('## Warnings');
    out.push('');
    for (const w of r.warnings) out.push(`- ${esc(w)}`);
  }
  out.push('');
  return out.join('\n');
}

/* ---------------------------------------------------------------------------------------------- */
/* SVG                                                                                             */
/* ---------------------------------------------------------------------------------------------- */

const xml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const COLORS: Record<string, string> = {
  pgconn: '#1f6feb',
  pg: '#e36209',
  'postgres.js': '#2da44e',
  'libpq (psql)': '#8250df',
  'raw read': '#6e7781',
  'raw write': '#6e7781',
};

/** Horizontal bars (median) with min–max whiskers: the ceiling, then read and write per server. */
export function toSvg(r: Report): string {
  const groups: { title: string; figs: Figure[] }[] = [];
  const okFigs = (s: Figure['section']) =>
    r.figures.filter((f) => f.section === s && f.status === 'ok' && f.value);
  groups.push({ title: 'Ceiling: raw loopback sockets', figs: sortCeiling(okFigs('ceiling')) });
  for (const s of ['read', 'write'] as const) {
    const figs = okFigs(s);
    for (const server of [...new Set(figs.map((f) => f.server))])
      groups.push({ title: `secure_${s} · ${server}`, figs: figs.filter((f) => f.server === server) });
  }
  const all = groups.flatMap((g) => g.figs);
  const max = Math.max(1, ...all.map((f) => f.value!.max));
  const labelW = 330;
  const barW = 520;
  const rowH = 18;
  const width = labelW + barW + 90;
  let y = 40;
  const parts: string[] = [];
  for (const g of groups) {
    if (!g.figs.length) continue;
    y += 10;
    parts.push(`<text x="10" y="${y + 12}" font-weight="bold">${xml(g.title)}</text>`);
    y += 20;
    for (const f of g.figs) {
      const v = f.value!;
      const w = (v.median / max) * barW;
      const color = COLORS[f.client] ?? '#57606a';
      const plain = f.mode === 'plain';
      const label = `${f.runtime} · ${f.client.replace('raw ', 'raw ')} · ${modeText(f.mode)}`;
      parts.push(`<text x="${labelW - 8}" y="${y + 13}" text-anchor="end">${xml(label)}</text>`);
      parts.push(
        `<rect x="${labelW}" y="${y + 2}" width="${w.toFixed(1)}" height="${rowH - 5}" fill="${color}"${plain ? ' fill-opacity="0.45"' : ''}><title>${xml(`${label}: ${fmtRate(v.median)} MB/s (min ${fmtRate(v.min)}, max ${fmtRate(v.max)})`)}</title></rect>`,
      );
      if (v.n > 1) {
        const x1 = labelW + (v.min / max) * barW;
        const x2 = labelW + (v.max / max) * barW;
        const ym = y + rowH / 2;
        parts.push(
          `<line x1="${x1.toFixed(1)}" y1="${ym}" x2="${x2.toFixed(1)}" y2="${ym}" stroke="#24292f" stroke-width="1"/>`,
        );
        parts.push(
          `<line x1="${x1.toFixed(1)}" y1="${ym - 4}" x2="${x1.toFixed(1)}" y2="${ym + 4}" stroke="#24292f"/>`,
        );
        parts.push(
          `<line x1="${x2.toFixed(1)}" y1="${ym - 4}" x2="${x2.toFixed(1)}" y2="${ym + 4}" stroke="#24292f"/>`,
        );
      }
      parts.push(
        `<text x="${labelW + Math.max(w, (v.max / max) * barW) + 6}" y="${y + 13}">${xml(fmtRate(v.median))}</text>`,
      );
      y += rowH;
    }
  }
  y += 30;
  const legend = Object.entries({
    pgconn: COLORS.pgconn,
    pg: COLORS.pg,
    'postgres.js': COLORS['postgres.js'],
    'libpq (psql)': COLORS['libpq (psql)'],
    'raw socket': COLORS['raw read'],
  })
    .map(
      ([k, col], i) =>
        `<rect x="${10 + i * 150}" y="${y - 12}" width="12" height="12" fill="${col}"/><text x="${28 + i * 150}" y="${y - 2}">${xml(k)}</text>`,
    )
    .join('');
  const height = y + 10;
  const title = `pgconn throughput, MB/s (median; whiskers: min–max; pale: plaintext)${r.config.quick ? ' — quick mode' : ''}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">${xml(title)}</text>`,
    `<text x="10" y="36" fill="#57606a">${xml(
      `${r.machine.date} · ${r.machine.cpu}, ${r.machine.cores} cores (loaded machine) · ${Object.entries(
        r.machine.runtimes,
      )
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    )}</text>`,
    ...parts,
    legend,
    '</svg>',
    '',
  ].join('\n');
}
