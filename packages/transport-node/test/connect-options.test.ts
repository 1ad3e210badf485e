/**
 * What Node's entry point reads before it connects (resolveNodeOptions): ~/.pgpass with its mode in
 * one stat, the service file, and the OS user only when no user is given (userInfo() reads the
 * password database); and the transport's file access for TLS material (a missing file is null).
 * No server needed: these are the files and lookups, not the connection.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// userInfo counted: the entry point must not call it when a user is given.
vi.mock('node:os', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:os')>();
  return { ...real, userInfo: vi.fn(real.userInfo) };
});

const { nodeTransport, resolveNodeOptions } = await import('../src/index.ts');

let dir: string;
const home = (name: string, pgpass?: { text: string; mode: number }): string => {
  const h = join(dir, name);
  mkdirSync(h);
  if (pgpass) {
    writeFileSync(join(h, '.pgpass'), pgpass.text);
    chmodSync(join(h, '.pgpass'), pgpass.mode);
  }
  return h;
};

beforeAll(() => {
  dir = mkdtempSync(join(os.tmpdir(), 'pgconn-connect-options-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('resolveNodeOptions', () => {
  it('takes the password from ~/.pgpass at 0600 and ignores it, with a warning, at 0644', () => {
    const line = { text: '127.0.0.1:5432:*:alice:from-file\n' };
    const ok = home('ok', { ...line, mode: 0o600 });
    const r = resolveNodeOptions('host=127.0.0.1 user=alice', { env: { HOME: ok } });
    expect(r.hosts[0]).toMatchObject({ password: 'from-file', passwordFromFile: true });
    expect(r.warnings).toEqual([]);

    const open = home('open', { ...line, mode: 0o644 });
    const ignored = resolveNodeOptions('host=127.0.0.1 user=alice', { env: { HOME: open } });
    expect(ignored.hosts[0]!.password).toBeUndefined();
    expect(ignored.warnings).toEqual([
      `WARNING: password file "${open}/.pgpass" has group or world access; permissions should be u=rw (0600) or less`,
    ]);
  });

  it('a missing password file gives nothing; a directory in its place, libpq\'s "not a plain file" warning', () => {
    const none = home('none');
    const r = resolveNodeOptions('host=127.0.0.1 user=alice', { env: { HOME: none } });
    expect([r.passfile, r.hosts[0]!.password, r.warnings]).toEqual([`${none}/.pgpass`, undefined, []]);
    const d = home('dir');
    mkdirSync(join(d, '.pgpass'));
    const dir = resolveNodeOptions('host=127.0.0.1 user=alice', { env: { HOME: d } });
    expect([dir.hosts[0]!.password, dir.warnings]).toEqual([
      undefined,
      [`WARNING: password file "${d}/.pgpass" is not a plain file`],
    ]);
  });

  it('reads the service file from the home directory', () => {
    const h = home('service');
    writeFileSync(join(h, '.pg_service.conf'), '[svc]\nhost=db.example\nport=6543\nuser=bob\n');
    const r = resolveNodeOptions('service=svc', { env: { HOME: h } });
    expect([r.hosts[0]!.host, r.hosts[0]!.port, r.user]).toEqual(['db.example', 6543, 'bob']);
    expect(() => resolveNodeOptions('service=nope', { env: { HOME: h, PGSYSCONFDIR: h } })).toThrow(
      'definition of service "nope" not found',
    );
  });

  it('looks the OS user up only when no user is given', () => {
    const userInfo = vi.mocked(os.userInfo);
    const h = home('user');
    userInfo.mockClear();
    expect(resolveNodeOptions('host=127.0.0.1 user=alice', { env: { HOME: h } }).user).toBe('alice');
    expect(resolveNodeOptions('host=127.0.0.1', { env: { HOME: h, PGUSER: 'envuser' } }).user).toBe(
      'envuser',
    );
    expect(userInfo).not.toHaveBeenCalled();
    const r = resolveNodeOptions('host=127.0.0.1', { env: { HOME: h } });
    expect(userInfo).toHaveBeenCalledTimes(1);
    expect([r.user, r.dbname]).toEqual([os.userInfo().username, os.userInfo().username]);
  });
});

describe('nodeTransport files (TLS material)', () => {
  it('a missing file, or a path under a regular file, is null; a present one is read', async () => {
    const h = home('files');
    const file = join(h, 'root.crt');
    writeFileSync(file, 'pem text');
    chmodSync(file, 0o640);
    for (const path of [join(h, 'absent.crt'), join(file, 'below')]) {
      expect(await nodeTransport.readFile(path)).toBeNull();
      expect(await nodeTransport.fileInfo(path)).toBeNull();
    }
    expect(new TextDecoder().decode((await nodeTransport.readFile(file))!)).toBe('pem text');
    expect(await nodeTransport.fileInfo(file)).toEqual({ isFile: true, mode: 0o640, uid: process.getuid!() });
    expect(await nodeTransport.fileInfo(h)).toMatchObject({ isFile: false });
  });
});
