/** startStandby: a real streaming hot standby of a PostgreSQL 15 primary. */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hbaLine, type PgServer, REPLICATION_HBA, startPostgres, startStandby } from '../src/index.ts';

const execFileAsync = promisify(execFile);

function alive(pids: readonly number[]): number[] {
  return pids.filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  });
}

async function pgrep(...args: string[]): Promise<number[]> {
  try {
    const { stdout } = await execFileAsync('pgrep', args, { encoding: 'utf8' });
    return stdout.split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // exit 1: no match
  }
}

const started: PgServer[] = [];
let primary: PgServer;
let standby: PgServer;

const HBA = [hbaLine('host', 'postgres', 'trust'), hbaLine('host', 'app', 'trust')];

beforeAll(async () => {
  primary = await startPostgres({
    version: 15,
    replication: true,
    users: [{ name: 'app' }],
    databases: ['appdb'],
    hba: HBA,
  });
  started.push(primary);
  const t0 = performance.now();
  standby = await startStandby(primary, { settings: { work_mem: '7MB' } });
  started.push(standby);
  console.log(`startStandby: ${(performance.now() - t0).toFixed(0)} ms`);
}, 60_000);

afterAll(async () => {
  await Promise.all(started.map((s) => s.stop()));
});

describe('startStandby', () => {
  it('is a hot standby in recovery on its own port and directory', async () => {
    expect(standby.port).not.toBe(primary.port);
    expect(standby.dir).not.toBe(primary.dir);
    expect(standby.version).toBe(15);
    expect(standby.serverVersion).toBe(primary.serverVersion);
    expect(await standby.sql('select pg_is_in_recovery()')).toBe('t');
    expect(await primary.sql('select pg_is_in_recovery()')).toBe('f');
    expect(await standby.sql('show hot_standby')).toBe('on');
    expect(await standby.sql('show port')).toBe(String(standby.port));
    expect(await standby.sql('show work_mem')).toBe('7MB');
    expect(await primary.sql('show work_mem')).toBe('4MB');
    expect(existsSync(`${standby.dataDir}/standby.signal`)).toBe(true);
    // Over TCP as well, and read-only.
    expect(await standby.sql('show transaction_read_only', { tcp: true })).toBe('on');
  });

  it('streams from the primary: roles, databases and new rows arrive', async () => {
    expect(await primary.sql('select application_name, state from pg_stat_replication')).toMatch(
      /\|streaming$/,
    );
    expect(await standby.sql("select rolname from pg_roles where rolname = 'app'")).toBe('app');
    expect(await standby.sql("select datname from pg_database where datname = 'appdb'")).toBe('appdb');
    await primary.sql('create table if not exists t(x int); insert into t values (42)');
    const deadline = Date.now() + 10_000;
    let got = '';
    while (Date.now() < deadline) {
      got = await standby
        .sql("select coalesce((select string_agg(x::text, ',') from t), '') ")
        .catch(() => '');
      if (got === '42') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(got).toBe('42');
    const write = await standby.psql(['-c', 'insert into t values (1)']);
    expect(write.code).not.toBe(0);
    expect(write.stderr).toContain('cannot execute INSERT in a read-only transaction');
  });

  it('copies the primary pg_hba (with the replication line) and authenticates its users', async () => {
    const rules = await standby.sql(
      "select type || ' ' || array_to_string(database, ',') || ' ' || array_to_string(user_name, ',') from pg_hba_file_rules order by line_number",
    );
    expect(rules.split('\n')).toEqual([
      'local all postgres',
      'host all postgres',
      'host all app',
      'host replication postgres',
    ]);
    expect(REPLICATION_HBA).toBe(hbaLine('host', 'postgres', 'trust', { database: 'replication' }));
    expect(await standby.sql('select current_user', { user: 'app', tcp: true, database: 'appdb' })).toBe(
      'app',
    );
    // setHba keeps the replication line on a replication: true server.
    await primary.setHba(HBA);
    expect(
      await primary.sql("select count(*) from pg_hba_file_rules where 'replication' = any(database)"),
    ).toBe('1');
  });

  it('refuses a primary that does not allow replication', async () => {
    const plain = await startPostgres({ version: 15 });
    started.push(plain);
    await expect(startStandby(plain)).rejects.toThrow(/does not allow streaming replication/);
    await plain.stop();
    expect(alive([plain.pid])).toEqual([]);
  }, 30_000);

  it('stops cleanly: no process and no directory left', async () => {
    const extra = await startStandby(primary);
    started.push(extra);
    expect(await extra.sql('select pg_is_in_recovery()')).toBe('t');
    const children = await pgrep('-P', String(extra.pid));
    expect(children.length).toBeGreaterThan(2); // startup (recovery), walreceiver, checkpointer…
    await extra.stop();
    expect(alive([extra.pid, ...children])).toEqual([]);
    expect(await pgrep('-f', extra.dataDir)).toEqual([]); // watchdog included
    expect(existsSync(extra.dir)).toBe(false);
    expect(extra.log()).toContain('database system is shut down');
  }, 30_000);
});
