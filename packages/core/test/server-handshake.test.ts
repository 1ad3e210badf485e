/**
 * The server state machine driven by scripted client bytes: no sockets. Each case names the
 * PostgreSQL behaviour it mirrors (reference §5, §6.2–§6.4, §7, §9, §10.5).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tlsServerEndPointHash } from '../src/auth/channel-binding.ts';
import { md5PasswordResponse, md5Verifier } from '../src/auth/md5.ts';
import { formatScramVerifier, ScramClient, scramVerifier } from '../src/auth/scram.ts';
import { type BackendMessage, decodeBackend } from '../src/codec/backend.ts';
import { PROTOCOL_3_0, PROTOCOL_3_1, PROTOCOL_3_2, PROTOCOL_GREASE } from '../src/codec/constants.ts';
import { Framer } from '../src/codec/framer.ts';
import { encodeFrontend, type FrontendMessage } from '../src/codec/frontend.ts';
import {
  encodeCancelRequest,
  encodeGSSENCRequest,
  encodeSSLRequest,
  encodeStartupMessage,
} from '../src/codec/startup.ts';
import { Writer } from '../src/codec/writer.ts';
import { AuthError, ProtocolError, TlsError } from '../src/errors.ts';
import type { AuthPlan, AuthRequest, ServerTlsInfo } from '../src/server/auth.ts';
import {
  type ServerAction,
  type ServerEvent,
  ServerHandshake,
  type ServerHandshakeConfig,
  type ServerSession,
  type ServerStep,
} from '../src/server/handshake.ts';
import { cleanAscii, parseBool, truncateName } from '../src/server/parameters.ts';

// ---------------------------------------------------------------------------------------------------
// Certificates (openssl, once per file)

let dir = '';
let serverCert: Uint8Array;
let aliceCert: Uint8Array;

function makeCert(name: string, cn: string): Uint8Array {
  const der = join(dir, `${name}.der`);
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'].concat([
      '-keyout',
      join(dir, `${name}.key`),
      '-subj',
      `/CN=${cn}`,
      '-outform',
      'DER',
      '-out',
      der,
    ]),
    { stdio: 'ignore' },
  );
  return new Uint8Array(readFileSync(der));
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pgconn-server-hs-'));
  serverCert = makeCert('server', 'localhost');
  aliceCert = makeCert('alice', 'alice');
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------
// Client bytes

const bytesOf = (f: (w: Writer) => void): Uint8Array => {
  const w = new Writer();
  f(w);
  return w.take();
};

const SSL_REQUEST = bytesOf(encodeSSLRequest);
const GSS_REQUEST = bytesOf(encodeGSSENCRequest);

const startup = (params: Record<string, string>, version = PROTOCOL_3_0): Uint8Array =>
  bytesOf((w) => encodeStartupMessage(w, { version, parameters: Object.entries(params) }));

const fe = (...msgs: FrontendMessage[]): Uint8Array =>
  bytesOf((w) => {
    for (const m of msgs) encodeFrontend(w, m);
  });

const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

/** An untyped packet with the given length word and body (for lengths the encoders refuse). */
const rawPacket = (length: number, body: number[] | Uint8Array): Uint8Array =>
  Uint8Array.of(length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff, ...body);

const cancelPacket = (pid: number, keyLength: number): Uint8Array =>
  rawPacket(12 + keyLength, [
    0x04,
    0xd2,
    0x16,
    0x2e,
    0,
    0,
    (pid >>> 8) & 0xff,
    pid & 0xff,
    ...new Array(keyLength).fill(7),
  ]);

// ---------------------------------------------------------------------------------------------------
// Server side helpers

const TLS_INFO: ServerTlsInfo = {
  authorized: false,
  alpnProtocol: 'postgresql',
  protocol: 'TLSv1.3',
  cipher: 'TLS_AES_256_GCM_SHA384',
};

const trust = (): AuthPlan => ({ method: 'trust' });

function server(config: Partial<ServerHandshakeConfig> = {}, steps?: ServerStep[]): ServerHandshake {
  return new ServerHandshake(
    { auth: trust, ...config },
    { remoteHost: '127.0.0.1', processId: 4242, ...(steps ? { onStep: (s) => steps.push(s) } : {}) },
  );
}

async function feed(hs: ServerHandshake, ...chunks: Uint8Array[]): Promise<ServerAction[]> {
  const out: ServerAction[] = [];
  for (const bytes of chunks) out.push(...(await hs.handle({ type: 'data', bytes })));
  return out;
}

const written = (actions: ServerAction[]): Uint8Array =>
  concat(...actions.flatMap((a) => (a.type === 'write' ? [a.bytes] : [])));

/** Decodes typed backend messages (after `skip` unframed reply bytes). */
function backend(bytes: Uint8Array, skip = 0): BackendMessage[] {
  const f = new Framer();
  f.push(bytes.slice(skip));
  const out: BackendMessage[] = [];
  for (let fr = f.next(); fr !== null; fr = f.next()) out.push(decodeBackend(fr));
  expect(f.buffered).toBe(0);
  return out;
}

const types = (msgs: BackendMessage[]): string[] => msgs.map((m) => m.type);

function closeOf(actions: ServerAction[]): Extract<ServerAction, { type: 'close' }> {
  const last = actions.at(-1);
  if (last?.type !== 'close')
    throw new Error(`expected close last, got ${actions.map((a) => a.type).join(',')}`);
  return last;
}

function readyOf(actions: ServerAction[]): ServerSession {
  const r = actions.find((a) => a.type === 'ready');
  if (r?.type !== 'ready') throw new Error(`expected ready, got ${actions.map((a) => a.type).join(',')}`);
  return r.session;
}

/** The FATAL ErrorResponse written before a close (skipping unframed bytes first). */
function fatalOf(actions: ServerAction[], skip = 0) {
  closeOf(actions);
  const msgs = backend(written(actions), skip);
  const err = msgs.at(-1);
  if (err?.type !== 'ErrorResponse') throw new Error(`expected ErrorResponse, got ${types(msgs).join(',')}`);
  expect(err.fields.severity).toBe('FATAL');
  expect(err.fields.severityNonLocalized).toBe('FATAL');
  return err.fields;
}

const ALICE = startup({ user: 'alice', database: 'db' });

// ---------------------------------------------------------------------------------------------------

describe('ServerHandshake: plaintext startup (ProcessStartupPacket, PostgresMain)', () => {
  it('trust: AuthenticationOk, ParameterStatus, BackendKeyData (4 bytes), ReadyForQuery, ready', async () => {
    const steps: ServerStep[] = [];
    const hs = server({}, steps);
    expect(hs.start()).toEqual([]);
    expect(hs.state).toBe('PEEK');
    const a = await feed(hs, ALICE);
    expect(a.map((x) => x.type)).toEqual(['write', 'ready']);
    const msgs = backend(written(a));
    expect(msgs[0]).toEqual({ type: 'AuthenticationOk' });
    expect(msgs.at(-1)).toEqual({ type: 'ReadyForQuery', status: 'I' });
    const key = msgs.find((m) => m.type === 'BackendKeyData');
    expect(key).toMatchObject({ type: 'BackendKeyData', processId: 4242 });
    if (key?.type === 'BackendKeyData') expect(key.secretKey.length).toBe(4);
    const params = new Map(msgs.flatMap((m) => (m.type === 'ParameterStatus' ? [[m.name, m.value]] : [])));
    expect(Object.fromEntries(params)).toMatchObject({
      server_encoding: 'UTF8',
      client_encoding: 'UTF8',
      DateStyle: 'ISO, MDY',
      integer_datetimes: 'on',
      IntervalStyle: 'postgres',
      is_superuser: 'off',
      session_authorization: 'alice',
      standard_conforming_strings: 'on',
      TimeZone: 'UTC',
      application_name: '',
      in_hot_standby: 'off',
      default_transaction_read_only: 'off',
      scram_iterations: '4096',
    });
    expect(params.get('server_version')).toMatch(/^\d+\.\d+/);
    const s = readyOf(a);
    expect(s).toMatchObject({
      user: 'alice',
      database: 'db',
      protocolVersion: PROTOCOL_3_0,
      requestedProtocolVersion: PROTOCOL_3_0,
      replication: false,
      tls: null,
      direct: false,
      authMethod: 'trust',
      backendKey: { processId: 4242 },
    });
    expect([...s.backendKey.secretKey]).toEqual([...(key as { secretKey: Uint8Array }).secretKey]);
    expect(s.leftover.length).toBe(0);
    expect(s.serverParameters).toEqual(params);
    expect(hs.state).toBe('READY');
    expect(steps.map((x) => x.state)).toEqual([
      'PEEK',
      'STARTUP_PACKET',
      'STARTUP_PACKET',
      'AUTHENTICATING',
      'READY',
    ]);
    // The connection belongs to the application now.
    expect(await hs.handle({ type: 'data', bytes: fe({ type: 'Sync' }) })).toEqual([]);
    expect(await hs.handle({ type: 'timeout' })).toEqual([]);
  });

  it('a startup packet split at every byte still works', async () => {
    const hs = server();
    const chunks = [...ALICE].map((b) => Uint8Array.of(b));
    const a = await feed(hs, ...chunks);
    expect(readyOf(a).user).toBe('alice');
  });

  it('database defaults to the user; names are cut to 63 bytes; application_name is cleaned', async () => {
    const long = 'u'.repeat(70);
    const hs = server({ serverParameters: { server_version: '17.9', TimeZone: null, extra: 'x' } });
    const a = await feed(hs, startup({ user: long, application_name: 'app\u00e9\n' }));
    const s = readyOf(a);
    expect(s.user).toBe('u'.repeat(63));
    expect(s.database).toBe('u'.repeat(63));
    expect(s.parameters.get('application_name')).toBe('app\u00e9\n');
    expect(s.serverParameters.get('application_name')).toBe('app\\xc3\\xa9\\x0a');
    expect(s.serverParameters.get('server_version')).toBe('17.9');
    expect(s.serverParameters.has('TimeZone')).toBe(false);
    expect(s.serverParameters.get('extra')).toBe('x');
  });

  it('pipelined messages after the startup packet are handed over, not lost', async () => {
    const hs = server();
    const query = fe({ type: 'Query', sql: 'select 1' }, { type: 'Terminate' });
    const s = readyOf(await feed(hs, concat(ALICE, query)));
    expect([...s.leftover]).toEqual([...query]);
  });

  it('a missing user: FATAL 28000', async () => {
    const f = fatalOf(await feed(server(), startup({ database: 'db' })));
    expect(f).toMatchObject({
      code: '28000',
      message: 'no PostgreSQL user name specified in startup packet',
    });
  });

  it('a missing terminator: FATAL 08P01 invalid startup packet layout', async () => {
    const good = startup({ user: 'alice' });
    const bad = rawPacket(good.length - 1, good.slice(4, -1));
    const a = await feed(server(), bad);
    expect(fatalOf(a)).toMatchObject({
      code: '08P01',
      message: 'invalid startup packet layout: expected terminator as last byte',
    });
    expect(closeOf(a).reason).toBe('protocol-violation');
    expect(closeOf(a).error).toBeInstanceOf(ProtocolError);
  });

  it('replication: invalid value FATAL 22023; refused unless enabled; physical → no database', async () => {
    const bad = fatalOf(await feed(server(), startup({ user: 'alice', replication: 'maybe' })));
    expect(bad).toMatchObject({
      code: '22023',
      message: 'invalid value for parameter "replication": "maybe"',
    });
    expect(bad.hint).toContain('"database"');
    const refused = fatalOf(await feed(server(), startup({ user: 'alice', replication: 'true' })));
    expect(refused).toMatchObject({
      code: '28000',
      message:
        'no pg_hba.conf entry for replication connection from host "127.0.0.1", user "alice", no encryption',
    });
    const phys = readyOf(
      await feed(server({ replication: true }), startup({ user: 'alice', replication: 'yes' })),
    );
    expect(phys).toMatchObject({ replication: true, database: '' });
    const logical = readyOf(
      await feed(
        server({ replication: true }),
        startup({ user: 'alice', database: 'db', replication: 'database' }),
      ),
    );
    expect(logical).toMatchObject({ replication: 'database', database: 'db' });
    const off = readyOf(await feed(server(), startup({ user: 'alice', replication: 'off' })));
    expect(off.replication).toBe(false);
  });
});

describe('ServerHandshake: startup packet length (§7.2: silent close, nothing sent)', () => {
  it.each([
    ['length 3', rawPacket(3, [])],
    ['length 7', rawPacket(7, [0, 3, 0])],
    ['length 10005', rawPacket(10005, [0, 3, 0, 0])],
    ['length 0x16030100-like garbage after a non-TLS first byte', rawPacket(0x7fffffff, [])],
  ])('%s', async (_, bytes) => {
    const a = await feed(server(), bytes);
    expect(a).toHaveLength(1);
    expect(closeOf(a)).toMatchObject({
      reason: 'protocol-violation',
      logMessage: 'invalid length of startup packet',
    });
  });

  it('length 10004 (a 10000-byte body) is accepted', async () => {
    const head = startup({ user: 'alice', pad: '' });
    const pad = 'x'.repeat(10004 - head.length);
    const packet = startup({ user: 'alice', pad });
    expect(packet.length).toBe(10004);
    expect(readyOf(await feed(server(), packet)).parameters.get('pad')).toBe(pad);
  });

  it('EOF: silent without data, "incomplete startup packet" with part of one', async () => {
    const none = server();
    expect(await none.handle({ type: 'closed' })).toEqual([
      expect.objectContaining({ type: 'close', reason: 'client-closed' }),
    ]);
    expect(await none.handle({ type: 'closed' })).toEqual([]);
    const part = server();
    await feed(part, ALICE.slice(0, 6));
    const a = await part.handle({ type: 'closed' });
    expect(closeOf(a)).toMatchObject({ reason: 'client-closed', logMessage: 'incomplete startup packet' });
  });
});

describe('ServerHandshake: protocol versions (§6.4 server side)', () => {
  it("2.0: the pre-3.0 error format 'E' + text + NUL", async () => {
    const a = await feed(server(), startup({ user: 'alice' }, 0x0002_0000));
    expect(new TextDecoder().decode(written(a))).toBe(
      'EFATAL:  unsupported frontend protocol 2.0: server supports 3.0 to 3.2\n\0',
    );
    expect(closeOf(a).reason).toBe('unsupported-protocol');
  });

  it('4.0: a v3 FATAL 0A000', async () => {
    const f = fatalOf(await feed(server(), startup({ user: 'alice' }, 0x0004_0000)));
    expect(f).toMatchObject({
      code: '0A000',
      message: 'unsupported frontend protocol 4.0: server supports 3.0 to 3.2',
    });
  });

  it('3.2: no NegotiateProtocolVersion, a 32-byte cancel key', async () => {
    const a = await feed(server(), startup({ user: 'alice' }, PROTOCOL_3_2));
    const msgs = backend(written(a));
    expect(types(msgs)).not.toContain('NegotiateProtocolVersion');
    const s = readyOf(a);
    expect(s.protocolVersion).toBe(PROTOCOL_3_2);
    expect(s.backendKey.secretKey.length).toBe(32);
  });

  it('3.1 (reserved): taken as requested like PostgreSQL 18, no negotiation, 4-byte key', async () => {
    const a = await feed(server(), startup({ user: 'alice' }, PROTOCOL_3_1));
    expect(types(backend(written(a)))).not.toContain('NegotiateProtocolVersion');
    expect(readyOf(a)).toMatchObject({ protocolVersion: PROTOCOL_3_1 });
    expect(readyOf(a).backendKey.secretKey.length).toBe(4);
  });

  it('3.9999 grease + _pq_.test_protocol_negotiation: NegotiateProtocolVersion(3.2, option) first', async () => {
    const a = await feed(
      server(),
      startup({ user: 'alice', _pq_test: 'x', '_pq_.test_protocol_negotiation': '' }, PROTOCOL_GREASE),
    );
    const msgs = backend(written(a));
    expect(a.filter((x) => x.type === 'write')).toHaveLength(1); // not flushed on its own
    expect(msgs[0]).toEqual({
      type: 'NegotiateProtocolVersion',
      version: PROTOCOL_3_2,
      unrecognizedOptions: ['_pq_.test_protocol_negotiation'],
    });
    expect(msgs[1]).toEqual({ type: 'AuthenticationOk' });
    const s = readyOf(a);
    expect(s).toMatchObject({ protocolVersion: PROTOCOL_3_2, requestedProtocolVersion: PROTOCOL_GREASE });
    expect(s.backendKey.secretKey.length).toBe(32); // the requested (grease) version counts
    expect([...s.protocolOptions.keys()]).toEqual(['_pq_.test_protocol_negotiation']);
    expect(s.parameters.has('_pq_.test_protocol_negotiation')).toBe(false);
    expect(s.parameters.get('_pq_test')).toBe('x');
  });

  it('3.0 with _pq_.foo, and 3.5 with _pq_.foo (§10.5)', async () => {
    const a = backend(written(await feed(server(), startup({ user: 'alice', '_pq_.foo': '1' }))));
    expect(a[0]).toEqual({
      type: 'NegotiateProtocolVersion',
      version: PROTOCOL_3_0,
      unrecognizedOptions: ['_pq_.foo'],
    });
    const b = backend(
      written(await feed(server(), startup({ user: 'alice', '_pq_.foo': '1' }, 0x0003_0005))),
    );
    expect(b[0]).toEqual({
      type: 'NegotiateProtocolVersion',
      version: PROTOCOL_3_2,
      unrecognizedOptions: ['_pq_.foo'],
    });
  });

  it('NegotiateProtocolVersion goes out before a FATAL for a missing user', async () => {
    const a = await feed(server(), startup({ database: 'db' }, PROTOCOL_GREASE));
    expect(types(backend(written(a)))).toEqual(['NegotiateProtocolVersion', 'ErrorResponse']);
  });
});

describe('ServerHandshake: SSLRequest / GSSENCRequest (§7.2, CVE-2021-23214, CVE-2026-6479)', () => {
  const tlsConfig = () => ({ tls: { certificate: serverCert } });

  it("SSLRequest with TLS configured: 'S', then startTls with nothing carried over", async () => {
    const hs = server(tlsConfig());
    const a = await feed(hs, SSL_REQUEST);
    expect(a).toEqual([
      { type: 'write', bytes: Uint8Array.of(0x53) },
      { type: 'startTls', direct: false, replay: new Uint8Array(0) },
    ]);
    expect(hs.state).toBe('TLS_HANDSHAKE');
    expect(await hs.handle({ type: 'tlsEstablished', info: TLS_INFO })).toEqual([]);
    expect(hs.state).toBe('STARTUP_PACKET');
    const s = readyOf(await feed(hs, ALICE));
    expect(s.tls).toEqual(TLS_INFO);
    expect(s.direct).toBe(false);
  });

  it("SSLRequest without TLS: 'N', then the StartupMessage in plaintext on the same socket", async () => {
    const hs = server();
    expect(written(await feed(hs, SSL_REQUEST))).toEqual(Uint8Array.of(0x4e));
    expect(readyOf(await feed(hs, ALICE)).tls).toBeNull();
  });

  it('SSLRequest + StartupMessage in one read (TLS configured): closed, nothing sent, nothing authenticated', async () => {
    let asked = 0;
    const hs = server({
      ...tlsConfig(),
      auth: () => {
        asked++;
        return { method: 'trust' };
      },
    });
    const a = await feed(hs, concat(SSL_REQUEST, ALICE));
    expect(a).toHaveLength(1);
    expect(closeOf(a)).toMatchObject({
      reason: 'protocol-violation',
      logMessage: 'received unencrypted data after SSL request',
    });
    expect(asked).toBe(0);
    expect(await hs.handle({ type: 'tlsEstablished', info: TLS_INFO })).toEqual([]);
  });

  it("SSLRequest + StartupMessage in one read (no TLS): 'N', then FATAL 08P01", async () => {
    let asked = 0;
    const hs = server({
      auth: () => {
        asked++;
        return { method: 'trust' };
      },
    });
    const a = await feed(hs, concat(SSL_REQUEST, ALICE));
    expect(written(a)[0]).toBe(0x4e);
    expect(fatalOf(a, 1)).toMatchObject({
      code: '08P01',
      message: 'received unencrypted data after SSL request',
    });
    expect(asked).toBe(0);
  });

  it('plaintext arriving while the TLS handshake runs is refused', async () => {
    const hs = server(tlsConfig());
    await feed(hs, SSL_REQUEST);
    const a = await feed(hs, ALICE);
    expect(written(a).length).toBe(0);
    expect(closeOf(a).reason).toBe('protocol-violation');
  });

  it('a failed TLS handshake closes silently', async () => {
    const hs = server(tlsConfig());
    await feed(hs, SSL_REQUEST);
    const a = await hs.handle({ type: 'tlsFailed', error: new Error('no shared cipher') });
    expect(a).toEqual([
      expect.objectContaining({
        type: 'close',
        reason: 'tls-failed',
        logMessage: 'could not accept SSL connection: no shared cipher',
      }),
    ]);
    expect(closeOf(a).error).toBeInstanceOf(TlsError);
  });

  it('SSLRequest twice (refused): the second is an unsupported protocol 1234.5679', async () => {
    const hs = server();
    expect(written(await feed(hs, SSL_REQUEST))).toEqual(Uint8Array.of(0x4e));
    const f = fatalOf(await feed(hs, SSL_REQUEST));
    expect(f).toMatchObject({
      code: '0A000',
      message: 'unsupported frontend protocol 1234.5679: server supports 3.0 to 3.2',
    });
  });

  it("SSLRequest after 'S' and TLS: no second negotiation, FATAL 1234.5679; GSSENCRequest: 1234.5680", async () => {
    for (const [again, version] of [
      [SSL_REQUEST, '1234.5679'],
      [GSS_REQUEST, '1234.5680'],
    ] as const) {
      const hs = server(tlsConfig());
      await feed(hs, SSL_REQUEST);
      await hs.handle({ type: 'tlsEstablished', info: TLS_INFO });
      expect(fatalOf(await feed(hs, again)).message).toBe(
        `unsupported frontend protocol ${version}: server supports 3.0 to 3.2`,
      );
    }
  });

  it("GSSENCRequest 'N', then SSLRequest 'S' (the client may try both, in either order)", async () => {
    const hs = server(tlsConfig());
    expect(written(await feed(hs, GSS_REQUEST))).toEqual(Uint8Array.of(0x4e));
    expect(written(await feed(hs, SSL_REQUEST))).toEqual(Uint8Array.of(0x53));
  });

  it("004_negotiate.pl: SSL 'N', GSS 'N', SSL again → no 'N', unsupported frontend protocol (no recursion)", async () => {
    const hs = server();
    expect(written(await feed(hs, SSL_REQUEST))).toEqual(Uint8Array.of(0x4e));
    expect(written(await feed(hs, GSS_REQUEST))).toEqual(Uint8Array.of(0x4e));
    const a = await feed(hs, SSL_REQUEST);
    expect(written(a)[0]).toBe(0x45); // 'E', a v3 ErrorResponse, not 'N'
    expect(fatalOf(a).message).toBe('unsupported frontend protocol 1234.5679: server supports 3.0 to 3.2');
  });

  it('many alternating requests in one chunk end after the third', async () => {
    const hs = server();
    const chunk = concat(...Array.from({ length: 5000 }, (_, i) => (i % 2 ? GSS_REQUEST : SSL_REQUEST)));
    const a = await feed(hs, chunk);
    // 'N' + FATAL: the bytes behind the first request are unencrypted data after it.
    expect(written(a)[0]).toBe(0x4e);
    expect(fatalOf(a, 1).message).toBe('received unencrypted data after SSL request');
  });

  it('GSSENCRequest with data behind it: FATAL after GSSAPI encryption request', async () => {
    const a = await feed(server(), concat(GSS_REQUEST, ALICE));
    expect(fatalOf(a, 1)).toMatchObject({
      code: '08P01',
      message: 'received unencrypted data after GSSAPI encryption request',
    });
  });

  it('a Unix socket answers SSLRequest with N even with TLS configured', async () => {
    const hs = new ServerHandshake({ auth: trust, ...tlsConfig() }, { isUnixSocket: true });
    expect(written(await feed(hs, SSL_REQUEST))).toEqual(Uint8Array.of(0x4e));
  });
});

describe('ServerHandshake: direct TLS (§5)', () => {
  const HELLO = Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5);

  it('enabled: startTls(direct) replays the ClientHello; ALPN postgresql; then the startup packet', async () => {
    const hs = server({ tls: { certificate: serverCert }, directTls: true });
    // A partial ClientHello is enough: what was read so far is replayed, the rest the TLS layer reads.
    expect(await feed(hs, HELLO.slice(0, 4))).toEqual([
      { type: 'startTls', direct: true, replay: HELLO.slice(0, 4) },
    ]);
    // From then on the transport owns the socket: bytes still delivered to us are a violation.
    expect(closeOf(await feed(hs, HELLO.slice(4))).reason).toBe('protocol-violation');
    const hs2 = server({ tls: { certificate: serverCert }, directTls: true });
    const b = await feed(hs2, HELLO);
    expect(b).toEqual([{ type: 'startTls', direct: true, replay: HELLO }]);
    expect(hs2.state).toBe('DIRECT_TLS');
    expect(await hs2.handle({ type: 'tlsEstablished', info: TLS_INFO })).toEqual([]);
    // After direct TLS: SSLRequest and GSSENCRequest are both answered 'N' (CVE-2026-14681).
    expect(written(await feed(hs2, SSL_REQUEST))).toEqual(Uint8Array.of(0x4e));
    expect(written(await feed(hs2, GSS_REQUEST))).toEqual(Uint8Array.of(0x4e));
    const s = readyOf(await feed(hs2, ALICE));
    expect(s).toMatchObject({ direct: true, tls: TLS_INFO });
  });

  it('without ALPN: closed with PostgreSQL log text', async () => {
    const hs = server({ tls: { certificate: serverCert }, directTls: true });
    await feed(hs, HELLO);
    const a = await hs.handle({ type: 'tlsEstablished', info: { ...TLS_INFO, alpnProtocol: null } });
    expect(a).toEqual([
      expect.objectContaining({
        type: 'close',
        reason: 'direct-tls-rejected',
        logMessage: 'received direct SSL connection request without ALPN protocol negotiation extension',
      }),
    ]);
  });

  it.each([
    ['disabled', { tls: { certificate: new Uint8Array(1) } }],
    ['no TLS configured', { directTls: true }],
  ])('%s: closed without a message (the client sees EOF)', async (_, cfg) => {
    const a = await feed(server(cfg), HELLO);
    expect(a).toHaveLength(1);
    expect(closeOf(a)).toMatchObject({ reason: 'direct-tls-rejected' });
  });
});

describe('ServerHandshake: CancelRequest (ProcessCancelRequestPacket)', () => {
  it.each([4, 32, 1, 256])('%i-byte key: handed over, nothing sent, closed', async (n) => {
    const hs = server();
    const a = await feed(hs, cancelPacket(77, n));
    expect(a.map((x) => x.type)).toEqual(['cancel', 'close']);
    expect(a[0]).toEqual({ type: 'cancel', processId: 77, secretKey: new Uint8Array(n).fill(7) });
    expect(closeOf(a).reason).toBe('cancel-request');
  });

  it('the encoder and the server agree (encodeCancelRequest)', async () => {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const a = await feed(
      server(),
      bytesOf((w) => encodeCancelRequest(w, 123456, key)),
    );
    expect(a[0]).toEqual({ type: 'cancel', processId: 123456, secretKey: key });
  });

  it.each([0, 257])('%i-byte key: closed, no cancel, no reply', async (n) => {
    const a = await feed(server(), cancelPacket(77, n));
    expect(a.map((x) => x.type)).toEqual(['close']);
    expect(closeOf(a)).toMatchObject({
      reason: 'protocol-violation',
      logMessage: 'invalid length of cancel key in cancel request packet',
    });
  });

  it('a cancel packet without a process ID', async () => {
    const a = await feed(server(), rawPacket(8, [0x04, 0xd2, 0x16, 0x2e]));
    expect(closeOf(a).logMessage).toBe('invalid length of cancel request packet');
  });
});

describe('ServerHandshake: policy before authentication (pg_hba.conf wording)', () => {
  it('requireTls: a plaintext StartupMessage gets FATAL 28000 "no pg_hba.conf entry … no encryption"', async () => {
    const a = await feed(server({ requireTls: true, tls: { certificate: serverCert } }), ALICE);
    expect(fatalOf(a)).toMatchObject({
      code: '28000',
      message: 'no pg_hba.conf entry for host "127.0.0.1", user "alice", database "db", no encryption',
    });
    expect(closeOf(a).error).toBeInstanceOf(AuthError);
  });

  it('requireTls over TLS: accepted', async () => {
    const hs = server({ requireTls: true, tls: { certificate: serverCert } });
    await feed(hs, SSL_REQUEST);
    await hs.handle({ type: 'tlsEstablished', info: TLS_INFO });
    expect(readyOf(await feed(hs, ALICE)).tls).not.toBeNull();
  });

  it('reject plan: PostgreSQL wording, or the given message', async () => {
    const a = fatalOf(await feed(server({ auth: () => ({ method: 'reject' }) }), ALICE));
    expect(a).toMatchObject({
      code: '28000',
      message:
        'pg_hba.conf rejects connection for host "127.0.0.1", user "alice", database "db", no encryption',
    });
    const b = fatalOf(await feed(server({ auth: () => ({ method: 'reject', message: 'go away' }) }), ALICE));
    expect(b.message).toBe('go away');
  });

  it('the provider sees user, database, TLS, parameters and the negotiated version', async () => {
    let seen: AuthRequest | undefined;
    const hs = server({
      auth: (r) => {
        seen = r;
        return { method: 'trust' };
      },
    });
    await feed(hs, startup({ user: 'alice', database: 'db', application_name: 'x' }, PROTOCOL_GREASE));
    expect(seen).toMatchObject({
      user: 'alice',
      database: 'db',
      tls: null,
      direct: false,
      remoteHost: '127.0.0.1',
      protocolVersion: PROTOCOL_3_2,
      replication: false,
    });
    expect(seen?.parameters.get('application_name')).toBe('x');
  });

  it('a provider that throws: FATAL XX000 without details, the reason logged', async () => {
    const a = await feed(
      server({
        auth: () => {
          throw new Error('db down');
        },
      }),
      ALICE,
    );
    expect(fatalOf(a)).toMatchObject({ code: 'XX000', message: 'internal error during authentication' });
    expect(closeOf(a)).toMatchObject({ reason: 'internal-error' });
    expect(closeOf(a).logMessage).toContain('db down');
  });
});

describe('ServerHandshake: password authentication', () => {
  const password = (pw = 'secret'): Partial<ServerHandshakeConfig> => ({
    auth: () => ({ method: 'password', verify: (p) => p === pw }),
  });

  it('cleartext: success', async () => {
    const hs = server(password());
    const a = await feed(hs, ALICE);
    expect(backend(written(a))).toEqual([{ type: 'AuthenticationCleartextPassword' }]);
    expect(hs.authState).toBe('password');
    const b = await feed(hs, fe({ type: 'PasswordMessage', password: 'secret' }));
    expect(readyOf(b).authMethod).toBe('password');
  });

  it('cleartext: wrong password FATAL 28P01', async () => {
    const hs = server(password());
    await feed(hs, ALICE);
    const a = await feed(hs, fe({ type: 'PasswordMessage', password: 'nope' }));
    expect(fatalOf(a)).toMatchObject({
      code: '28P01',
      message: 'password authentication failed for user "alice"',
    });
    expect(closeOf(a)).toMatchObject({ reason: 'auth-failed' });
  });

  it('cleartext: an empty password never authenticates (CVE-2017-7546)', async () => {
    const hs = server({ auth: () => ({ method: 'password', verify: () => true }) });
    await feed(hs, ALICE);
    const a = await feed(hs, fe({ type: 'PasswordMessage', password: '' }));
    expect(fatalOf(a)).toMatchObject({ code: '28P01', message: 'empty password returned by client' });
  });

  it('a message that is not a password: FATAL 08P01 with its type number', async () => {
    const hs = server(password());
    await feed(hs, ALICE);
    const a = await feed(hs, fe({ type: 'Query', sql: 'select 1' }));
    expect(fatalOf(a)).toMatchObject({
      code: '08P01',
      message: 'expected password response, got message type 81',
    });
  });

  it('a malformed password packet: FATAL 08P01 invalid password packet size', async () => {
    const hs = server(password());
    await feed(hs, ALICE);
    const a = await feed(hs, Uint8Array.of(0x70, 0, 0, 0, 8, 0x61, 0, 0x62, 0));
    expect(fatalOf(a)).toMatchObject({ code: '08P01', message: 'invalid password packet size' });
  });

  it('a password message over PG_MAX_AUTH_TOKEN_LENGTH: closed without a reply', async () => {
    const hs = server(password());
    await feed(hs, ALICE);
    const a = await feed(hs, Uint8Array.of(0x70, 0, 1, 0, 0));
    expect(a).toEqual([expect.objectContaining({ type: 'close', logMessage: 'invalid message length' })]);
  });

  it('a verify callback that throws: FATAL XX000', async () => {
    const hs = server({
      auth: () => ({
        method: 'password',
        verify: () => {
          throw new Error('ldap down');
        },
      }),
    });
    await feed(hs, ALICE);
    expect(fatalOf(await feed(hs, fe({ type: 'PasswordMessage', password: 'x' }))).code).toBe('XX000');
  });

  it('a query pipelined behind the password is kept', async () => {
    const hs = server(password());
    await feed(hs, ALICE);
    const q = fe({ type: 'Query', sql: 'select 1' });
    const s = readyOf(await feed(hs, concat(fe({ type: 'PasswordMessage', password: 'secret' }), q)));
    expect([...s.leftover]).toEqual([...q]);
  });
});

describe('ServerHandshake: MD5', () => {
  const md5Plan = (v: string | null): Partial<ServerHandshakeConfig> => ({
    auth: () => ({ method: 'md5', storedVerifier: v }),
  });

  async function md5Login(v: string | null, pw: string) {
    const hs = server(md5Plan(v));
    const first = backend(written(await feed(hs, ALICE)));
    const req = first[0];
    if (req?.type !== 'AuthenticationMD5Password') throw new Error(`got ${types(first).join(',')}`);
    return feed(hs, fe({ type: 'PasswordMessage', password: md5PasswordResponse('alice', pw, req.salt) }));
  }

  it('success', async () => {
    expect(readyOf(await md5Login(md5Verifier('alice', 'secret'), 'secret')).authMethod).toBe('md5');
  });

  it('wrong password and unknown user: the same FATAL 28P01', async () => {
    const wrong = fatalOf(await md5Login(md5Verifier('alice', 'secret'), 'nope'));
    const unknown = fatalOf(await md5Login(null, 'secret'));
    expect(wrong).toEqual(unknown);
    expect(wrong).toMatchObject({
      code: '28P01',
      message: 'password authentication failed for user "alice"',
    });
  });

  it('a role with a SCRAM secret is authenticated with SCRAM even under md5 (CheckPWChallengeAuth)', async () => {
    const v = formatScramVerifier(await scramVerifier('secret', { iterations: 16 }));
    const hs = server(md5Plan(v));
    expect(types(backend(written(await feed(hs, ALICE))))).toEqual(['AuthenticationSASL']);
  });
});

describe('ServerHandshake: SCRAM-SHA-256 and -PLUS (scripted ScramClient)', () => {
  const scramPlan = (verifier: AuthPlan & { method: 'scram-sha-256' }): Partial<ServerHandshakeConfig> => ({
    auth: () => verifier,
    scramIterations: 16,
  });

  /** Runs the exchange; returns the server's last actions (ready or FATAL). */
  async function scramLogin(
    hs: ServerHandshake,
    client: ScramClient,
    opts: { mechanism?: string; split?: boolean } = {},
  ): Promise<{ actions: ServerAction[]; mechanisms: string[] }> {
    const first = backend(written(await feed(hs, ALICE)));
    const sasl = first.at(-1);
    if (sasl?.type !== 'AuthenticationSASL') throw new Error(`got ${types(first).join(',')}`);
    const mechanism = opts.mechanism ?? client.mechanism;
    const a = await feed(
      hs,
      fe({ type: 'SASLInitialResponse', mechanism, data: client.clientFirstMessage() }),
    );
    const cont = backend(written(a)).at(-1);
    if (cont?.type !== 'AuthenticationSASLContinue') return { actions: a, mechanisms: sasl.mechanisms };
    const final = await client.handleServerFirst(cont.data);
    const b = await feed(hs, fe({ type: 'SASLResponse', data: final }));
    const msgs = backend(written(b));
    const fin = msgs.find((m) => m.type === 'AuthenticationSASLFinal');
    if (fin?.type === 'AuthenticationSASLFinal') await client.handleServerFinal(fin.data);
    return { actions: b, mechanisms: sasl.mechanisms };
  }

  async function overTls(cfg: Partial<ServerHandshakeConfig>): Promise<ServerHandshake> {
    const hs = server({ ...cfg, tls: { certificate: serverCert } });
    await feed(hs, SSL_REQUEST);
    await hs.handle({ type: 'tlsEstablished', info: TLS_INFO });
    return hs;
  }

  it('plaintext: only SCRAM-SHA-256 is offered; success', async () => {
    const v = await scramVerifier('secret', { iterations: 16 });
    const hs = server(scramPlan({ method: 'scram-sha-256', verifier: v }));
    const client = new ScramClient({ password: 'secret', mechanism: 'SCRAM-SHA-256' });
    const r = await scramLogin(hs, client);
    expect(r.mechanisms).toEqual(['SCRAM-SHA-256']);
    expect(types(backend(written(r.actions))).slice(0, 2)).toEqual([
      'AuthenticationSASLFinal',
      'AuthenticationOk',
    ]);
    expect(readyOf(r.actions).authMethod).toBe('SCRAM-SHA-256');
    expect(client.done).toBe(true);
  });

  it('a stored secret string works as the verifier', async () => {
    const v = formatScramVerifier(await scramVerifier('secret', { iterations: 16 }));
    const hs = server(scramPlan({ method: 'scram-sha-256', verifier: v }));
    const r = await scramLogin(hs, new ScramClient({ password: 'secret', mechanism: 'SCRAM-SHA-256' }));
    expect(readyOf(r.actions).authMethod).toBe('SCRAM-SHA-256');
  });

  it('wrong password and unknown user: the same FATAL 28P01, the same salt for the same unknown user', async () => {
    const v = await scramVerifier('secret', { iterations: 16 });
    const wrong = await scramLogin(
      server(scramPlan({ method: 'scram-sha-256', verifier: v })),
      new ScramClient({ password: 'nope', mechanism: 'SCRAM-SHA-256' }),
    );
    const unknown = await scramLogin(
      server({ ...scramPlan({ method: 'scram-sha-256', verifier: null }), mockAuthSecret: 'seed' }),
      new ScramClient({ password: 'secret', mechanism: 'SCRAM-SHA-256' }),
    );
    expect(fatalOf(wrong.actions)).toEqual(fatalOf(unknown.actions));
    expect(fatalOf(wrong.actions)).toMatchObject({
      code: '28P01',
      message: 'password authentication failed for user "alice"',
    });
    // The mock exchange looks like a real one: same iteration count, a stable salt.
    const salts: string[] = [];
    for (let i = 0; i < 2; i++) {
      const hs = server({
        ...scramPlan({ method: 'scram-sha-256', verifier: null }),
        mockAuthSecret: 'seed',
      });
      await feed(hs, ALICE);
      const c = new ScramClient({ password: 'x', mechanism: 'SCRAM-SHA-256' });
      const a = await feed(
        hs,
        fe({ type: 'SASLInitialResponse', mechanism: 'SCRAM-SHA-256', data: c.clientFirstMessage() }),
      );
      const cont = backend(written(a))[0];
      if (cont?.type !== 'AuthenticationSASLContinue') throw new Error('no continue');
      const text = new TextDecoder().decode(cont.data);
      expect(text).toMatch(/,i=16$/);
      salts.push(text.split(',')[1] ?? '');
    }
    expect(salts[0]).toBe(salts[1]);
  });

  it('over TLS: PLUS offered first; PLUS with the right binding succeeds', async () => {
    const v = await scramVerifier('secret', { iterations: 16 });
    const hs = await overTls(scramPlan({ method: 'scram-sha-256', verifier: v }));
    const client = new ScramClient({
      password: 'secret',
      mechanism: 'SCRAM-SHA-256-PLUS',
      channelBinding: { type: 'tls-server-end-point', data: await tlsServerEndPointHash(serverCert) },
    });
    const r = await scramLogin(hs, client);
    expect(r.mechanisms).toEqual(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
    expect(readyOf(r.actions).authMethod).toBe('SCRAM-SHA-256-PLUS');
  });

  it('PLUS with binding data of another certificate: FATAL 28000 SCRAM channel binding check failed', async () => {
    const v = await scramVerifier('secret', { iterations: 16 });
    const hs = await overTls(scramPlan({ method: 'scram-sha-256', verifier: v }));
    const client = new ScramClient({
      password: 'secret',
      mechanism: 'SCRAM-SHA-256-PLUS',
      channelBinding: { type: 'tls-server-end-point', data: await tlsServerEndPointHash(aliceCert) },
    });
    const r = await scramLogin(hs, client);
    expect(fatalOf(r.actions)).toMatchObject({
      code: '28000',
      message: 'SCRAM channel binding check failed',
    });
  });

  it("gs2 flag 'y' while PLUS was advertised: FATAL 08P01 channel binding negotiation error (downgrade)", async () => {
    const v = await scramVerifier('secret', { iterations: 16 });
    const hs = await overTls(scramPlan({ method: 'scram-sha-256', verifier: v }));
    const client = new ScramClient({
      password: 'secret',
      mechanism: 'SCRAM-SHA-256',
      clientSupportsBinding: true,
    });
    const r = await scramLogin(hs, client);
    expect(fatalOf(r.actions)).toMatchObject({
      code: '08P01',
      message: 'SCRAM channel binding negotiation error',
    });
  });

  it("over TLS without our certificate: PLUS is not offered and 'y' is accepted", async () => {
    const v = await scramVerifier('secret', { iterations: 16 });
    const hs = server({ ...scramPlan({ method: 'scram-sha-256', verifier: v }), tls: {} });
    await feed(hs, SSL_REQUEST);
    await hs.handle({ type: 'tlsEstablished', info: TLS_INFO });
    const client = new ScramClient({
      password: 'secret',
      mechanism: 'SCRAM-SHA-256',
      clientSupportsBinding: true,
    });
    const r = await scramLogin(hs, client);
    expect(r.mechanisms).toEqual(['SCRAM-SHA-256']);
    expect(readyOf(r.actions).authMethod).toBe('SCRAM-SHA-256');
  });

  it('selecting PLUS on a plaintext connection: FATAL 08P01 invalid SASL mechanism', async () => {
    const v = await scramVerifier('secret', { iterations: 16 });
    const hs = server(scramPlan({ method: 'scram-sha-256', verifier: v }));
    const client = new ScramClient({ password: 'secret', mechanism: 'SCRAM-SHA-256' });
    const r = await scramLogin(hs, client, { mechanism: 'SCRAM-SHA-256-PLUS' });
    expect(fatalOf(r.actions)).toMatchObject({
      code: '08P01',
      message: 'client selected an invalid SASL authentication mechanism',
    });
  });

  it('no initial response: an empty SASLContinue, then the client-first-message', async () => {
    const v = await scramVerifier('secret', { iterations: 16 });
    const hs = server(scramPlan({ method: 'scram-sha-256', verifier: v }));
    await feed(hs, ALICE);
    const a = await feed(hs, fe({ type: 'SASLInitialResponse', mechanism: 'SCRAM-SHA-256', data: null }));
    expect(backend(written(a))).toEqual([{ type: 'AuthenticationSASLContinue', data: new Uint8Array(0) }]);
    expect(hs.authState).toBe('sasl-first');
    const client = new ScramClient({ password: 'secret', mechanism: 'SCRAM-SHA-256' });
    const b = await feed(hs, fe({ type: 'SASLResponse', data: client.clientFirstMessage() }));
    const cont = backend(written(b))[0];
    if (cont?.type !== 'AuthenticationSASLContinue') throw new Error('no continue');
    const c = await feed(hs, fe({ type: 'SASLResponse', data: await client.handleServerFirst(cont.data) }));
    expect(readyOf(c).authMethod).toBe('SCRAM-SHA-256');
  });

  it('a SASL message over PG_MAX_SASL_MESSAGE_LENGTH: closed without a reply', async () => {
    const v = await scramVerifier('secret', { iterations: 16 });
    const hs = server(scramPlan({ method: 'scram-sha-256', verifier: v }));
    await feed(hs, ALICE);
    const a = await feed(
      hs,
      fe({ type: 'SASLInitialResponse', mechanism: 'SCRAM-SHA-256', data: new Uint8Array(1100).fill(0x61) }),
    );
    expect(a).toEqual([expect.objectContaining({ type: 'close', logMessage: 'invalid message length' })]);
  });

  it('a malformed client-first-message: FATAL 08P01', async () => {
    const v = await scramVerifier('secret', { iterations: 16 });
    const hs = server(scramPlan({ method: 'scram-sha-256', verifier: v }));
    await feed(hs, ALICE);
    const a = await feed(
      hs,
      fe({
        type: 'SASLInitialResponse',
        mechanism: 'SCRAM-SHA-256',
        data: new TextEncoder().encode('x,,n=,r=abc'),
      }),
    );
    expect(fatalOf(a).code).toBe('08P01');
    const hs2 = server(scramPlan({ method: 'scram-sha-256', verifier: v }));
    await feed(hs2, ALICE);
    expect(fatalOf(await feed(hs2, fe({ type: 'Query', sql: '' }))).message).toBe(
      'expected SASL response, got message type 81',
    );
  });
});

describe('ServerHandshake: certificate authentication', () => {
  async function certLogin(info: Partial<ServerTlsInfo>, user = 'alice') {
    const hs = server({ tls: { certificate: serverCert }, auth: () => ({ method: 'cert' }) });
    await feed(hs, SSL_REQUEST);
    await hs.handle({ type: 'tlsEstablished', info: { ...TLS_INFO, ...info } });
    return feed(hs, startup({ user }));
  }

  it('CN equals the user: ready (cert)', async () => {
    const s = readyOf(await certLogin({ peerCertificate: aliceCert, authorized: true }));
    expect(s.authMethod).toBe('cert');
    expect(s.tls?.peerCertificate).toEqual(aliceCert);
  });

  it('CN mismatch: FATAL 28000 certificate authentication failed', async () => {
    const a = await certLogin({ peerCertificate: aliceCert, authorized: true }, 'bob');
    expect(fatalOf(a)).toMatchObject({
      code: '28000',
      message: 'certificate authentication failed for user "bob"',
    });
    expect(closeOf(a).logMessage).toContain(
      'provided user name (bob) and authenticated user name (alice) do not match',
    );
  });

  it('an unverified chain or no certificate: FATAL 28000 connection requires a valid client certificate', async () => {
    for (const info of [{ peerCertificate: aliceCert, authorized: false }, { authorized: false }]) {
      expect(fatalOf(await certLogin(info))).toMatchObject({
        code: '28000',
        message: 'connection requires a valid client certificate',
      });
    }
  });

  it('an unparsable certificate fails like a mismatch', async () => {
    const a = await certLogin({ peerCertificate: Uint8Array.of(1, 2, 3), authorized: true });
    expect(fatalOf(a).message).toBe('certificate authentication failed for user "alice"');
  });

  it('plaintext: no hostssl line can match', async () => {
    const a = await feed(server({ auth: () => ({ method: 'cert' }) }), ALICE);
    expect(fatalOf(a).message).toBe(
      'no pg_hba.conf entry for host "127.0.0.1", user "alice", database "db", no encryption',
    );
  });
});

describe('ServerHandshake: authentication_timeout and concurrency', () => {
  it('before any byte, and before the startup packet is complete: silent close', async () => {
    const hs = server();
    expect(await hs.handle({ type: 'timeout' })).toEqual([
      expect.objectContaining({ type: 'close', reason: 'timeout' }),
    ]);
    const hs2 = server();
    await feed(hs2, ALICE.slice(0, 10));
    const a = await hs2.handle({ type: 'timeout' });
    expect(written(a).length).toBe(0);
    expect(closeOf(a).reason).toBe('timeout');
  });

  it('while the provider is pending: closed at once, silently (PostgreSQL suppresses output during auth)', async () => {
    let resolve: (p: AuthPlan) => void = () => {};
    const hs = server({ auth: () => new Promise<AuthPlan>((r) => (resolve = r)) });
    const pending = hs.handle({ type: 'data', bytes: ALICE });
    await new Promise((r) => setTimeout(r, 5));
    expect(hs.authState).toBe('provider');
    const t = await hs.handle({ type: 'timeout' });
    expect(t).toEqual([
      expect.objectContaining({
        type: 'close',
        reason: 'timeout',
        logMessage: 'canceling authentication due to timeout',
      }),
    ]);
    resolve({ method: 'trust' });
    expect(await pending).toEqual([]);
    expect(hs.state).toBe('CLOSED');
    expect(await hs.handle({ type: 'data', bytes: ALICE })).toEqual([]);
  });

  it('while waiting for the password: silent close; a late password is ignored', async () => {
    const hs = server({ auth: () => ({ method: 'password', verify: () => true }) });
    await feed(hs, ALICE);
    const a = await hs.handle({ type: 'timeout' });
    expect(written(a).length).toBe(0);
    expect(await feed(hs, fe({ type: 'PasswordMessage', password: 'x' }))).toEqual([]);
  });

  it('events delivered without waiting are processed in order', async () => {
    const hs = server({ auth: async () => ({ method: 'password', verify: async (p) => p === 'pw' }) });
    const [a, b] = await Promise.all([
      hs.handle({ type: 'data', bytes: ALICE }),
      hs.handle({ type: 'data', bytes: fe({ type: 'PasswordMessage', password: 'pw' }) }),
    ]);
    expect(types(backend(written(a)))).toEqual(['AuthenticationCleartextPassword']);
    expect(readyOf(b).authMethod).toBe('password');
  });

  it('EOF during authentication closes silently', async () => {
    const hs = server({ auth: () => ({ method: 'password', verify: () => true }) });
    await feed(hs, ALICE);
    const a = await hs.handle({ type: 'closed' });
    expect(a).toEqual([expect.objectContaining({ type: 'close', reason: 'client-closed' })]);
    expect(closeOf(a).logMessage).toBeUndefined();
  });

  it('a read that fails during authentication is logged: "SSL error: <reason>" on TLS, else the error', async () => {
    // Node's message holds the whole OpenSSL error-queue line; its `reason` is what PostgreSQL prints.
    const forged = Object.assign(
      new Error('80ACE3AD:error:0A000119:SSL routines:ssl3_get_record:decryption failed or bad record mac'),
      { reason: 'decryption failed or bad record mac' },
    );
    const cases: [Error, string][] = [
      [forged, 'SSL error: decryption failed or bad record mac'],
      [new Error('read ECONNRESET'), 'connection closed: read ECONNRESET'],
    ];
    for (const [error, log] of cases) {
      const hs = server({ auth: () => ({ method: 'password', verify: () => true }) });
      await feed(hs, ALICE);
      const a = await hs.handle({ type: 'closed', error });
      expect(closeOf(a)).toMatchObject({ reason: 'client-closed', logMessage: log });
    }
  });

  it('unexpected TLS events are violations', async () => {
    const events: ServerEvent[] = [
      { type: 'tlsEstablished', info: TLS_INFO },
      { type: 'tlsFailed', error: new Error('x') },
    ];
    for (const e of events) {
      const a = await server().handle(e);
      expect(closeOf(a).reason).toBe('protocol-violation');
    }
  });
});

describe('server parameter helpers', () => {
  it('parseBool mirrors parse_bool_with_len', () => {
    for (const t of ['t', 'TRUE', 'tr', 'y', 'yes', 'on', 'ON', '1']) expect(parseBool(t)).toBe(true);
    for (const f of ['f', 'false', 'n', 'no', 'of', 'off', '0']) expect(parseBool(f)).toBe(false);
    for (const x of ['', 'o', 'maybe', '01', 'truex', '2']) expect(parseBool(x)).toBeNull();
  });

  it('truncateName keeps whole characters; cleanAscii escapes bytes', () => {
    expect(truncateName(`${'a'.repeat(62)}é`)).toBe('a'.repeat(62));
    expect(truncateName('short')).toBe('short');
    expect(cleanAscii('a\tb')).toBe('a\\x09b');
    // Printable ASCII passes unchanged (its fast path); a newline at the very end, DEL, NUL and
    // non-ASCII (as UTF-8 bytes) do not.
    const printable = Array.from({ length: 0x5f }, (_, i) => String.fromCharCode(0x20 + i)).join('');
    expect(cleanAscii(printable)).toBe(printable);
    expect(cleanAscii('')).toBe('');
    expect(cleanAscii('line\n')).toBe('line\\x0a');
    expect(cleanAscii('\x7f\0')).toBe('\\x7f\\x00');
    expect(cleanAscii('café')).toBe('caf\\xc3\\xa9');
  });
});
