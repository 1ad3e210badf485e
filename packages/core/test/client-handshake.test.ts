/**
 * The client state machine driven by scripted server bytes: no sockets. Each case states what libpq
 * does (reference §2.3, §3.4–3.6, §4.6, §6) and checks the actions ours emits.
 */
import { describe, expect, it } from 'vitest';
import { ScramServer, scramVerifier } from '../src/auth/scram.ts';
import {
  type ClientAction,
  ClientHandshake,
  type HandshakeConfig,
  type HandshakeResult,
} from '../src/client/handshake.ts';
import { parseRequireAuth } from '../src/client/require-auth.ts';
import { type BackendMessage, encodeBackend } from '../src/codec/backend.ts';
import { Framer } from '../src/codec/framer.ts';
import { decodeFrontend } from '../src/codec/frontend.ts';
import { decodeStartupPacket } from '../src/codec/startup.ts';
import { Writer } from '../src/codec/writer.ts';
import { AuthError, ProtocolError, ServerError, TlsError } from '../src/errors.ts';
import type { TlsInfo } from '../src/transport.ts';

const server = (...msgs: BackendMessage[]): Uint8Array => {
  const w = new Writer();
  for (const m of msgs) encodeBackend(w, m);
  return w.take();
};

const READY: BackendMessage[] = [
  { type: 'ParameterStatus', name: 'server_version', value: '18.4' },
  { type: 'BackendKeyData', processId: 42, secretKey: Uint8Array.of(1, 2, 3, 4) },
  { type: 'ReadyForQuery', status: 'I' },
];

const TLS_OK: TlsInfo = {
  authorized: false,
  alpnProtocol: 'postgresql',
  protocol: 'TLSv1.3',
  cipher: 'TLS_AES_256_GCM_SHA384',
};

const base: HandshakeConfig = { host: 'localhost', user: 'alice', database: 'db' };

const writes = (actions: ClientAction[]): Uint8Array[] =>
  actions.flatMap((a) => (a.type === 'write' ? [a.bytes] : []));

const failure = (actions: ClientAction[]): Error => {
  const f = actions.find((a) => a.type === 'fail');
  if (f?.type !== 'fail')
    throw new Error(`expected a fail action, got ${actions.map((a) => a.type).join(',')}`);
  return f.error;
};

const done = (actions: ClientAction[]): HandshakeResult => {
  const d = actions.find((a) => a.type === 'done');
  if (d?.type !== 'done') throw new Error(`expected done, got ${actions.map((a) => a.type).join(',')}`);
  return d.result;
};

/** Decodes the StartupMessage a write carries (untyped packet). */
const startupOf = (bytes: Uint8Array) => {
  const f = new Framer();
  f.push(bytes);
  return decodeStartupPacket(f.nextUntyped(8, 10004)!);
};

const SSL_REQUEST = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

describe('ClientHandshake: encryption negotiation (§3.5)', () => {
  it('sslmode=disable: plaintext StartupMessage, trust, ReadyForQuery', async () => {
    const hs = new ClientHandshake({ ...base, sslmode: 'disable' });
    expect(hs.start()).toEqual([{ type: 'connect', tls: null }]);
    const a = await hs.handle({ type: 'connected' });
    const startup = startupOf(writes(a)[0]!);
    expect(startup).toMatchObject({ type: 'StartupMessage', version: 0x30000 });
    if (startup.type === 'StartupMessage')
      expect([...startup.parameters]).toEqual([
        ['user', 'alice'],
        ['database', 'db'],
      ]);
    const r = done(await hs.handle({ type: 'data', bytes: server({ type: 'AuthenticationOk' }, ...READY) }));
    expect(r).toMatchObject({
      encryption: 'plaintext',
      authMethod: 'trust',
      connections: 1,
      transactionStatus: 'I',
    });
    expect(r.parameters.get('server_version')).toBe('18.4');
    expect(r.backendKey?.processId).toBe(42);
    expect(hs.state).toBe('OK');
  });

  it("sslmode=prefer: 'N' continues in plaintext on the same socket", async () => {
    const hs = new ClientHandshake({ ...base, sslmode: 'prefer' });
    hs.start();
    expect([...writes(await hs.handle({ type: 'connected' }))[0]!]).toEqual(SSL_REQUEST);
    const a = await hs.handle({ type: 'data', bytes: Uint8Array.of(0x4e) });
    expect(a.map((x) => x.type)).toEqual(['write']);
    expect(startupOf(writes(a)[0]!).type).toBe('StartupMessage');
    const r = done(await hs.handle({ type: 'data', bytes: server({ type: 'AuthenticationOk' }, ...READY) }));
    expect(r.connections).toBe(1);
  });

  it("sslmode=require: 'N' fails before any StartupMessage or password is written", async () => {
    const hs = new ClientHandshake({ ...base, sslmode: 'require', password: 'secret' });
    hs.start();
    await hs.handle({ type: 'connected' });
    const a = await hs.handle({ type: 'data', bytes: Uint8Array.of(0x4e) });
    expect(writes(a)).toEqual([]);
    expect(failure(a).message).toBe('server does not support SSL, but SSL was required');
  });

  it("'S' followed by plaintext in the same read fails without fallback (CVE-2021-23222)", async () => {
    const hs = new ClientHandshake({ ...base, sslmode: 'prefer' });
    hs.start();
    await hs.handle({ type: 'connected' });
    const a = await hs.handle({
      type: 'data',
      bytes: Uint8Array.of(0x53, ...server({ type: 'AuthenticationOk' })),
    });
    expect(a.map((x) => x.type)).toEqual(['fail']);
    expect(failure(a).message).toBe('received unencrypted data after SSL response');
  });

  it("'E' to SSLRequest fails at once under prefer, text unread (CVE-2024-10977)", async () => {
    const hs = new ClientHandshake({ ...base, sslmode: 'prefer' });
    hs.start();
    await hs.handle({ type: 'connected' });
    const a = await hs.handle({ type: 'data', bytes: new TextEncoder().encode('EFATAL: evil\n\0') });
    expect(a.map((x) => x.type)).toEqual(['fail']);
    const e = failure(a);
    expect(e.message).toBe('server sent an error response during SSL exchange');
    expect(e.message).not.toContain('evil');
  });

  it('an invalid reply byte fails', async () => {
    const hs = new ClientHandshake({ ...base, sslmode: 'require' });
    hs.start();
    await hs.handle({ type: 'connected' });
    expect(failure(await hs.handle({ type: 'data', bytes: Uint8Array.of(0x58) })).message).toBe(
      'received invalid response to SSL negotiation: X',
    );
  });

  it('sslmode=prefer: a failed TLS handshake reconnects in plaintext', async () => {
    const hs = new ClientHandshake({ ...base, sslmode: 'prefer' });
    hs.start();
    await hs.handle({ type: 'connected' });
    const a = await hs.handle({ type: 'data', bytes: Uint8Array.of(0x53) });
    expect(a[0]).toMatchObject({
      type: 'startTls',
      options: { alpnProtocols: ['postgresql'], servername: 'localhost' },
    });
    const b = await hs.handle({ type: 'tlsFailed', error: new Error('wrong version number') });
    expect(b).toEqual([{ type: 'close' }, { type: 'connect', tls: null }]);
    const c = await hs.handle({ type: 'connected' });
    expect(startupOf(writes(c)[0]!).type).toBe('StartupMessage');
    const r = done(await hs.handle({ type: 'data', bytes: server({ type: 'AuthenticationOk' }, ...READY) }));
    expect(r).toMatchObject({ encryption: 'plaintext', connections: 2 });
    expect(hs.failures.map((f) => f.message)).toEqual(['SSL error: wrong version number']);
  });

  it('sslmode=allow: plaintext first, an auth failure retries with TLS', async () => {
    const hs = new ClientHandshake({ ...base, sslmode: 'allow' });
    hs.start();
    await hs.handle({ type: 'connected' });
    const denied = server({
      type: 'ErrorResponse',
      fields: { severity: 'FATAL', code: '28000', message: 'no pg_hba.conf entry' },
    });
    expect(await hs.handle({ type: 'data', bytes: denied })).toEqual([
      { type: 'close' },
      { type: 'connect', tls: null },
    ]);
    expect([...writes(await hs.handle({ type: 'connected' }))[0]!]).toEqual(SSL_REQUEST);
  });

  it('sslmode=prefer over TLS: an ErrorResponse before authentication reconnects in plaintext', async () => {
    const hs = new ClientHandshake({ ...base, sslmode: 'prefer' });
    hs.start();
    await hs.handle({ type: 'connected' });
    await hs.handle({ type: 'data', bytes: Uint8Array.of(0x53) });
    await hs.handle({ type: 'tlsEstablished', info: TLS_OK });
    const err = server({
      type: 'ErrorResponse',
      fields: { severity: 'FATAL', code: '28000', message: 'hostnossl' },
    });
    expect((await hs.handle({ type: 'data', bytes: err })).map((a) => a.type)).toEqual(['close', 'connect']);
  });

  it('sqlstate 57P03 fails this address with the server error (the host loop moves on)', async () => {
    const hs = new ClientHandshake({ ...base, sslmode: 'prefer' });
    hs.start();
    await hs.handle({ type: 'connected' });
    await hs.handle({ type: 'data', bytes: Uint8Array.of(0x4e) });
    const e = failure(
      await hs.handle({
        type: 'data',
        bytes: server({
          type: 'ErrorResponse',
          fields: { severity: 'FATAL', code: '57P03', message: 'starting up' },
        }),
      }),
    );
    expect(e).toBeInstanceOf(ServerError);
    expect((e as ServerError).code).toBe('57P03');
  });

  it('direct TLS: ClientHello first, ALPN required', async () => {
    const hs = new ClientHandshake({ ...base, sslmode: 'require', sslnegotiation: 'direct' });
    const [c] = hs.start();
    expect(c).toMatchObject({ type: 'connect', tls: { alpnProtocols: ['postgresql'] } });
    const a = await hs.handle({ type: 'tlsEstablished', info: { ...TLS_OK, alpnProtocol: null } });
    expect(failure(a).message).toBe(
      'direct SSL connection was established without ALPN protocol negotiation extension',
    );
  });

  it('direct TLS with a weak sslmode is refused before connecting', () => {
    const hs = new ClientHandshake({ ...base, sslmode: 'prefer', sslnegotiation: 'direct' });
    expect(failure(hs.start()).message).toContain(
      'weak sslmode "prefer" may not be used with sslnegotiation=direct',
    );
  });

  it('verify-full without a root certificate fails before connecting', () => {
    const hs = new ClientHandshake({
      ...base,
      sslmode: 'verify-full',
      tls: { rootCertPath: '/nope/root.crt' },
    });
    const e = failure(hs.start());
    expect(e).toBeInstanceOf(TlsError);
    expect(e.message).toMatch(/^root certificate file "\/nope\/root.crt" does not exist/);
  });

  it('require with a root certificate verifies the chain (libpq sets SSL_VERIFY_PEER)', async () => {
    const hs = new ClientHandshake({ ...base, sslmode: 'require', tls: { rootCert: ['PEM'] } });
    hs.start();
    await hs.handle({ type: 'connected' });
    await hs.handle({ type: 'data', bytes: Uint8Array.of(0x53) });
    const a = await hs.handle({
      type: 'tlsEstablished',
      info: { ...TLS_OK, authorized: false, authorizationError: 'SELF_SIGNED_CERT_IN_CHAIN' },
    });
    expect(failure(a).message).toBe('SSL error: certificate verify failed (SELF_SIGNED_CERT_IN_CHAIN)');
  });

  it('gssencmode=require fails clearly', () => {
    expect(() => new ClientHandshake({ ...base, gssencmode: 'require' })).toThrow(
      /GSSAPI encryption is not supported/,
    );
  });

  it('a server that closes during the exchange ends in a ConnectionError', async () => {
    const hs = new ClientHandshake({ ...base, sslmode: 'disable' });
    hs.start();
    await hs.handle({ type: 'connected' });
    expect(failure(await hs.handle({ type: 'closed' })).message).toMatch(
      /^server closed the connection unexpectedly/,
    );
  });
});

describe('ClientHandshake: authentication (§6)', () => {
  const toStartup = async (cfg: HandshakeConfig): Promise<ClientHandshake> => {
    const hs = new ClientHandshake({ sslmode: 'disable', ...cfg });
    hs.start();
    await hs.handle({ type: 'connected' });
    return hs;
  };

  it('cleartext password', async () => {
    const hs = await toStartup({ ...base, password: 'pw' });
    const a = await hs.handle({ type: 'data', bytes: server({ type: 'AuthenticationCleartextPassword' }) });
    const f = new Framer();
    f.push(writes(a)[0]!);
    expect(decodeFrontend(f.next()!, { passwordMessage: 'password' })).toEqual({
      type: 'PasswordMessage',
      password: 'pw',
    });
  });

  it('MD5: "md5" + md5(md5(password + user) + salt)', async () => {
    // echo -n "md5$(echo -n 'pwalice' | md5sum | cut -c1-32)" ... computed with md5sum, see below.
    const hs = await toStartup({ ...base, password: 'pw' });
    const a = await hs.handle({
      type: 'data',
      bytes: server({ type: 'AuthenticationMD5Password', salt: Uint8Array.of(1, 2, 3, 4) }),
    });
    const f = new Framer();
    f.push(writes(a)[0]!);
    const m = decodeFrontend(f.next()!, { passwordMessage: 'password' });
    expect(m.type === 'PasswordMessage' && /^md5[0-9a-f]{32}$/.test(m.password)).toBe(true);
  });

  it('no password supplied', async () => {
    const hs = await toStartup({ ...base });
    const e = failure(
      await hs.handle({ type: 'data', bytes: server({ type: 'AuthenticationCleartextPassword' }) }),
    );
    expect(e.message).toBe('fe_sendauth: no password supplied');
  });

  it('require_auth=scram-sha-256 refuses a cleartext request without sending the password', async () => {
    const hs = await toStartup({ ...base, password: 'pw', requireAuth: parseRequireAuth('scram-sha-256') });
    const a = await hs.handle({ type: 'data', bytes: server({ type: 'AuthenticationCleartextPassword' }) });
    expect(writes(a)).toEqual([]);
    expect(failure(a).message).toBe(
      'authentication method requirement "scram-sha-256" failed: server requested a cleartext password',
    );
  });

  it('require_auth=!none: trust is refused', async () => {
    const hs = await toStartup({ ...base, requireAuth: parseRequireAuth('!none') });
    expect(
      failure(await hs.handle({ type: 'data', bytes: server({ type: 'AuthenticationOk' }) })).message,
    ).toBe('authentication method requirement "!none" failed: server did not complete authentication');
  });

  it('channel_binding=require: trust and MD5 are refused', async () => {
    const hs = await toStartup({ ...base, password: 'pw', channelBinding: 'require' });
    expect(
      failure(await hs.handle({ type: 'data', bytes: server({ type: 'AuthenticationOk' }) })).message,
    ).toBe('channel binding required, but server authenticated client without channel binding');
    const hs2 = await toStartup({ ...base, password: 'pw', channelBinding: 'require' });
    const a = await hs2.handle({
      type: 'data',
      bytes: server({ type: 'AuthenticationMD5Password', salt: Uint8Array.of(1, 2, 3, 4) }),
    });
    expect(writes(a)).toEqual([]);
    expect(failure(a).message).toBe(
      "channel binding required but not supported by server's authentication request",
    );
  });

  it('SCRAM-SHA-256-PLUS offered over plaintext means a stripping proxy: fail', async () => {
    const hs = await toStartup({ ...base, password: 'pw' });
    const a = await hs.handle({
      type: 'data',
      bytes: server({ type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] }),
    });
    expect(failure(a)).toBeInstanceOf(AuthError);
    expect(failure(a).message).toBe(
      'server offered SCRAM-SHA-256-PLUS authentication over a non-SSL connection',
    );
  });

  it("over TLS without a peer certificate, PLUS offered: SCRAM-SHA-256 with gs2 'n' (never 'y', a downgrade sign)", async () => {
    const hs = new ClientHandshake({ ...base, sslmode: 'require', password: 'pw' });
    hs.start();
    await hs.handle({ type: 'connected' });
    await hs.handle({ type: 'data', bytes: Uint8Array.of(0x53) });
    await hs.handle({ type: 'tlsEstablished', info: TLS_OK });
    const a = await hs.handle({
      type: 'data',
      bytes: server({ type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] }),
    });
    const f = new Framer();
    f.push(writes(a)[0]!);
    const m = decodeFrontend(f.next()!, { passwordMessage: 'sasl-initial' });
    expect(m.type === 'SASLInitialResponse' && m.mechanism).toBe('SCRAM-SHA-256');
    if (m.type === 'SASLInitialResponse')
      expect(new TextDecoder().decode(m.data!).startsWith('n,,')).toBe(true);
  });

  it('full SCRAM-SHA-256 exchange against the ScramServer; AuthenticationOk before SASLFinal is refused', async () => {
    for (const skipFinal of [false, true]) {
      const hs = await toStartup({ ...base, password: 'pencil' });
      const verifier = await scramVerifier('pencil');
      const srv = new ScramServer({ verifier, channelBinding: null, plusAdvertised: false });
      const init = writes(
        await hs.handle({
          type: 'data',
          bytes: server({ type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256'] }),
        }),
      )[0]!;
      const f = new Framer();
      f.push(init);
      const first = decodeFrontend(f.next()!, { passwordMessage: 'sasl-initial' });
      if (first.type !== 'SASLInitialResponse' || !first.data)
        throw new Error('expected SASLInitialResponse');
      const serverFirst = srv.handleClientFirst(first.data);
      const fin = writes(
        await hs.handle({
          type: 'data',
          bytes: server({ type: 'AuthenticationSASLContinue', data: serverFirst }),
        }),
      )[0]!;
      f.push(fin);
      const second = decodeFrontend(f.next()!, { passwordMessage: 'sasl' });
      if (second.type !== 'SASLResponse') throw new Error('expected SASLResponse');
      const serverFinal = await srv.handleClientFinal(second.data);
      if (skipFinal) {
        const e = failure(await hs.handle({ type: 'data', bytes: server({ type: 'AuthenticationOk' }) }));
        expect(e.message).toBe('server sent AuthenticationOk before the SASL exchange completed');
      } else {
        const r = done(
          await hs.handle({
            type: 'data',
            bytes: server(
              { type: 'AuthenticationSASLFinal', data: serverFinal },
              { type: 'AuthenticationOk' },
              ...READY,
            ),
          }),
        );
        expect(r.authMethod).toBe('SCRAM-SHA-256');
      }
    }
  });
});

describe('ClientHandshake: protocol negotiation (§6.4) and startup limits', () => {
  const awaiting = async (cfg: Partial<HandshakeConfig> = {}): Promise<ClientHandshake> => {
    const hs = new ClientHandshake({ ...base, sslmode: 'disable', ...cfg });
    hs.start();
    await hs.handle({ type: 'connected' });
    return hs;
  };
  const npv = (version: number, unrecognizedOptions: string[] = []): Uint8Array =>
    server({ type: 'NegotiateProtocolVersion', version, unrecognizedOptions });

  it('3.2 requested, server negotiates 3.0: accepted', async () => {
    const hs = await awaiting({ maxProtocolVersion: 0x30002 });
    const r = done(
      await hs.handle({
        type: 'data',
        bytes: Uint8Array.of(...npv(0x30000), ...server({ type: 'AuthenticationOk' }, ...READY)),
      }),
    );
    expect(r.protocolVersion).toBe(0x30000);
  });

  it.each([
    [0x30003, [], 'server requested downgrade to a higher-numbered version'],
    [0x30001, [], 'server requested downgrade to non-existent 3.1 protocol version'],
    [0x20000, [], 'server requested downgrade to pre-3.0 protocol version'],
    [0x30002, [], 'server negotiated but asks for no changes'],
    [0x30000, ['client_encoding'], 'without a _pq_. prefix'],
  ])('invalid NegotiateProtocolVersion %s %j fails', async (version, options, text) => {
    const hs = await awaiting({ maxProtocolVersion: 0x30002 });
    const e = failure(await hs.handle({ type: 'data', bytes: npv(version, options) }));
    expect(e).toBeInstanceOf(ProtocolError);
    expect(e.message).toContain(text);
  });

  it('a duplicate NegotiateProtocolVersion fails', async () => {
    const hs = await awaiting({ maxProtocolVersion: 0x30002 });
    const e = failure(
      await hs.handle({ type: 'data', bytes: Uint8Array.of(...npv(0x30000), ...npv(0x30000)) }),
    );
    expect(e.message).toBe('received duplicate protocol negotiation message');
  });

  it('min_protocol_version=3.2 refuses a 3.0 server', async () => {
    const hs = await awaiting({ maxProtocolVersion: 0x30002, minProtocolVersion: 0x30002 });
    const e = failure(await hs.handle({ type: 'data', bytes: npv(0x30000) }));
    expect(e.message).toContain(
      'server only supports protocol version 3.0, but "min_protocol_version" was set to 3.2',
    );
  });

  it('a 32-byte cancel key under protocol 3.0 fails; under 3.2 it is kept', async () => {
    const key = new Uint8Array(32).fill(9);
    const hs = await awaiting();
    const msgs: BackendMessage[] = [
      { type: 'AuthenticationOk' },
      { type: 'BackendKeyData', processId: 1, secretKey: key },
    ];
    expect(failure(await hs.handle({ type: 'data', bytes: server(...msgs) })).message).toContain(
      'not allowed in protocol version 3.0',
    );
    const hs2 = await awaiting({ maxProtocolVersion: 0x30002 });
    const r = done(
      await hs2.handle({ type: 'data', bytes: server(...msgs, { type: 'ReadyForQuery', status: 'I' }) }),
    );
    expect(r.backendKey?.secretKey).toEqual(key);
  });

  it('an authentication request longer than 2000 bytes is refused before decoding', async () => {
    const hs = await awaiting();
    const huge = server({ type: 'AuthenticationSASL', mechanisms: ['X'.repeat(3000)] });
    expect(failure(await hs.handle({ type: 'data', bytes: huge })).message).toBe(
      'received invalid authentication request',
    );
  });

  it('an unexpected message type while authenticating fails with libpq wording', async () => {
    const hs = await awaiting();
    expect(
      failure(await hs.handle({ type: 'data', bytes: server({ type: 'ReadyForQuery', status: 'I' }) }))
        .message,
    ).toBe('expected authentication request from server, but received Z');
  });

  it('bytes after ReadyForQuery are handed over, not lost', async () => {
    const hs = await awaiting();
    const extra = server({ type: 'NoticeResponse', fields: { severity: 'NOTICE', message: 'hi' } });
    const r = done(
      await hs.handle({
        type: 'data',
        bytes: Uint8Array.of(...server({ type: 'AuthenticationOk' }, ...READY), ...extra),
      }),
    );
    expect(r.leftover).toEqual(extra);
  });
});
