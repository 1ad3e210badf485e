/**
 * `pgconn serve` with pgconn's own client: `pgconn probe` for every sslmode × --tls setting, and the
 * COPY source and sink (byte counts, exact rows, cancel with the right and a wrong key) through
 * @pgconn/transport-node.
 */
import { join } from 'node:path';
import type { Connection } from '@pgconn/core';
import { connect } from '@pgconn/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cancelRequest,
  cli,
  eventually,
  rawConnect,
  type Served,
  serve,
  stopAllServers,
  tempDir,
} from './serve-harness.ts';

const dir = tempDir('pgconn-serve-client-');
const CA = join(dir.path, 'ca.crt');
let optional: Served;
let off: Served;
let required: Served;

beforeAll(async () => {
  optional = await serve(['--tls-dir', dir.path]);
  const files = ['--tls-cert', join(dir.path, 'server.crt'), '--tls-key', join(dir.path, 'server.key')];
  [off, required] = await Promise.all([serve(['--tls', 'off']), serve(['--tls', 'required', ...files])]);
}, 30_000);

afterAll(async () => {
  await stopAllServers();
  dir.remove();
});

type Outcome = 'plain' | 'ssl' | 'fail';
const SSLMODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
const EXPECTED: Record<'off' | 'optional' | 'required', Record<(typeof SSLMODES)[number], Outcome>> = {
  off: {
    disable: 'plain',
    allow: 'plain',
    prefer: 'plain',
    require: 'fail',
    'verify-ca': 'fail',
    'verify-full': 'fail',
  },
  optional: {
    disable: 'plain',
    allow: 'plain',
    prefer: 'ssl',
    require: 'ssl',
    'verify-ca': 'ssl',
    'verify-full': 'ssl',
  },
  // allow: plaintext first, refused (no pg_hba.conf entry), then TLS.
  required: {
    disable: 'fail',
    allow: 'ssl',
    prefer: 'ssl',
    require: 'ssl',
    'verify-ca': 'ssl',
    'verify-full': 'ssl',
  },
};

describe('pgconn probe against pgconn serve', () => {
  const servers = { off: () => off, optional: () => optional, required: () => required };
  const cases = (Object.keys(EXPECTED) as Array<keyof typeof EXPECTED>).flatMap((tls) =>
    SSLMODES.map((sslmode) => [tls, sslmode, EXPECTED[tls][sslmode]] as const),
  );
  const outcomes = new Map<
    string,
    Promise<{ outcome: Outcome; code: number | null; auth?: string; error?: string }>
  >();

  beforeAll(() => {
    // Two probes at a time: each is a fresh Node process.
    let chain: Promise<unknown>[] = [Promise.resolve(), Promise.resolve()];
    cases.forEach(([tls, sslmode], i) => {
      const lane = i % 2;
      const p = chain[lane]!.then(async () => {
        const r = await cli(
          [
            'probe',
            '--json',
            `host=localhost hostaddr=127.0.0.1 port=${servers[tls]().port} user=postgres dbname=postgres sslmode=${sslmode} sslrootcert=${CA}`,
          ],
          { PGPASSWORD: 'postgres' },
        );
        const report = JSON.parse(r.stdout) as {
          ok: boolean;
          result?: { encryption: string; authMethod: string };
          error?: { message: string };
        };
        const outcome: Outcome = !report.ok
          ? 'fail'
          : report.result!.encryption.startsWith('SSL')
            ? 'ssl'
            : 'plain';
        return { outcome, code: r.code, auth: report.result?.authMethod, error: report.error?.message };
      });
      chain[lane] = p.catch(() => {});
      outcomes.set(`${tls}/${sslmode}`, p);
    });
    chain = [];
  });

  it.each(cases)(
    '--tls %s, sslmode=%s → %s',
    async (tls, sslmode, expected) => {
      const r = await outcomes.get(`${tls}/${sslmode}`)!;
      expect(r.outcome).toBe(expected);
      expect(r.code).toBe(expected === 'fail' ? 1 : 0);
      if (expected === 'ssl') expect(r.auth).toBe('SCRAM-SHA-256-PLUS');
      if (expected === 'plain') expect(r.auth).toBe('SCRAM-SHA-256');
      if (expected === 'fail') {
        expect(r.error).toMatch(
          tls === 'off'
            ? /server does not support SSL, but SSL was required/
            : /no pg_hba\.conf entry for host/,
        );
      }
    },
    20_000,
  );
});

describe('COPY through @pgconn/transport-node', () => {
  let conn: Connection;
  beforeAll(async () => {
    conn = await connect(
      `host=localhost hostaddr=127.0.0.1 port=${optional.port} user=postgres password=postgres sslmode=verify-full sslrootcert=${CA}`,
      { env: {} },
    );
  });
  afterAll(async () => {
    await conn?.close();
  });

  const source = (char: string, n: number, m: number) =>
    `COPY (SELECT repeat('${char}', ${n}) FROM generate_series(1, ${m})) TO STDOUT`;

  it('COPY source: one CopyData per row, N bytes and a newline, M rows', async () => {
    const row = Buffer.from(`${'x'.repeat(100)}\n`);
    let rows = 0;
    let bytes = 0;
    let wrong = 0;
    const stream = conn.copyOut(source('x', 100, 20_000));
    for (let r = await stream.next(); ; r = await stream.next()) {
      if (r.done) {
        expect(r.value).toBe('COPY 20000');
        break;
      }
      rows++;
      bytes += r.value.length;
      if (!row.equals(r.value)) wrong++;
    }
    expect({ rows, bytes, wrong }).toEqual({ rows: 20_000, bytes: 20_000 * 101, wrong: 0 });
  });

  it('COPY source: rows longer than a write batch, zero rows, empty rows', async () => {
    const sizes: number[] = [];
    let ok = true;
    for await (const chunk of conn.copyOut(source('y', 200_000, 3))) {
      sizes.push(chunk.length);
      ok &&= chunk[chunk.length - 1] === 0x0a && chunk.subarray(0, -1).every((b) => b === 0x79);
    }
    expect(sizes).toEqual([200_001, 200_001, 200_001]);
    expect(ok).toBe(true);

    const zero = conn.copyOut(source('x', 10, 0));
    const first = await zero.next();
    expect(first).toEqual({ done: true, value: 'COPY 0' });

    let empty = 0;
    for await (const chunk of conn.copyOut(source('x', 0, 5))) {
      expect([...chunk]).toEqual([0x0a]);
      empty++;
    }
    expect(empty).toBe(5);
  });

  it('COPY sink: rows counted by newlines, a last line without one counts', async () => {
    const lines = Array.from({ length: 1000 }, (_, i) => `row ${i}\t${'z'.repeat(i % 50)}\n`).join('');
    const text = Buffer.from(`${lines}last line`);
    async function* chunks() {
      // Uneven pieces, some splitting lines, one large enough for the client's no-copy path.
      let at = 0;
      for (const size of [1, 7, 300, 40_000, 3]) {
        yield text.subarray(at, at + size);
        at += size;
      }
      yield text.subarray(at);
    }
    expect(await conn.copyIn('COPY sink FROM STDIN', chunks())).toBe('COPY 1001');
    expect(await conn.copyIn('copy public.sink (a, b) from stdin', [Buffer.from('a\nb\n')])).toBe('COPY 2');
    expect(await conn.copyIn('COPY sink FROM STDIN', [])).toBe('COPY 0');
  });

  it('COPY sink: a failing source sends CopyFail and the session stays usable', async () => {
    async function* failing() {
      yield Buffer.from('one\n');
      throw new Error('boom');
    }
    await expect(conn.copyIn('COPY sink FROM STDIN', failing())).rejects.toThrow('boom');
    expect((await conn.query('select 1')).rows).toEqual([['1']]);
  });

  it('a cancel request with a wrong key is ignored; the right key cancels a running COPY source', async () => {
    const pid = conn.backendKey!.processId;
    // Wrong key, mid-stream: the COPY runs to its end.
    let mark = optional.log().length;
    let bytes = 0;
    let n = 0;
    for await (const chunk of conn.copyOut(source('x', 9999, 3000))) {
      bytes += chunk.length;
      if (++n === 1) {
        const peer = await rawConnect(optional.port);
        peer.socket.write(cancelRequest(pid, Buffer.from([1, 2, 3, 4])));
        await peer.closed();
        await eventually(() => /no such session or wrong key, ignored/.test(optional.logSince(mark)));
      }
    }
    expect(bytes).toBe(3000 * 10_000);

    // The right key (conn.cancel()), mid-stream of 1 GB: 57014, and the session goes on.
    mark = optional.log().length;
    bytes = 0;
    n = 0;
    const run = async () => {
      for await (const chunk of conn.copyOut(source('x', 9999, 100_000))) {
        bytes += chunk.length;
        if (++n === 1) await conn.cancel();
      }
    };
    await expect(run()).rejects.toMatchObject({
      fields: { code: '57014', message: 'canceling statement due to user request' },
    });
    expect(bytes).toBeGreaterThan(0);
    expect(bytes).toBeLessThan(100_000 * 10_000);
    expect(optional.logSince(mark)).toMatch(
      new RegExp(`cancel request for process ${pid}: canceling its statement`),
    );
    expect((await conn.query('select 1')).rows).toEqual([['1']]);
    expect(conn.transactionStatus).toBe('I');
  }, 20_000);
});
