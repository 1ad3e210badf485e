import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatScramVerifier,
  mockVerifier,
  parseScramVerifier,
  SCRAM_DEFAULT_MAX_ITERATIONS,
  ScramClient,
  type ScramClientOptions,
  ScramServer,
  type ScramServerOptions,
  type ScramVerifier,
  scramVerifier,
  verifyScramPlainPassword,
} from '../src/auth/scram.ts';
import { AuthError, OptionError, ProtocolError } from '../src/errors.ts';
import { fcParams } from './fc.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const b = (s: string) => enc.encode(s);
const s = (u: Uint8Array) => dec.decode(u);
const b64 = (u: Uint8Array) => btoa(String.fromCharCode(...u));
const unb64 = (t: string) => Uint8Array.from(atob(t), (c) => c.charCodeAt(0));

// RFC 7677 §3 test vector.
const RFC = {
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal:
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
  salt: 'W22ZaJ0SNY7soEsUEjb6gQ==',
  // Computed independently with Python's hashlib.pbkdf2_hmac / hmac (see the report).
  verifier:
    'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=',
};

const CB = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
const OTHER_CB = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
const ITER = 16; // keep PBKDF2 cheap in tests that do not need the RFC vector

function isPgConnAuthOrProtocol(e: unknown): boolean {
  return e instanceof AuthError || e instanceof ProtocolError;
}

interface Run {
  client: ScramClient;
  server: ScramServer;
}

/** A full exchange; returns the objects so tests can inspect states. Throws whatever a step throws. */
async function exchange(
  clientOpts: Partial<ScramClientOptions> & { password: string | Uint8Array },
  serverOpts: Partial<ScramServerOptions> & { verifier: ScramVerifier },
): Promise<Run> {
  const client = new ScramClient({ mechanism: 'SCRAM-SHA-256', ...clientOpts });
  const server = new ScramServer({
    mechanism: client.mechanism,
    channelBinding: null,
    ...serverOpts,
  });
  const serverFirst = server.handleClientFirst(client.clientFirstMessage());
  const clientFinal = await client.handleServerFirst(serverFirst);
  const serverFinal = await server.handleClientFinal(clientFinal);
  await client.handleServerFinal(serverFinal);
  return { client, server };
}

describe('SCRAM-SHA-256: RFC 7677 test vector', () => {
  it('client messages are byte-exact and the server signature verifies', async () => {
    const client = new ScramClient({
      password: 'pencil',
      mechanism: 'SCRAM-SHA-256',
      nonce: 'rOprNGfwEbeRWgbNEkqO',
      username: 'user',
    });
    expect(s(client.clientFirstMessage())).toBe(RFC.clientFirst);
    expect(s(await client.handleServerFirst(b(RFC.serverFirst)))).toBe(RFC.clientFinal);
    expect(client.done).toBe(false);
    await client.handleServerFinal(b(RFC.serverFinal));
    expect(client.done).toBe(true);
  });

  it('server messages are byte-exact', async () => {
    const verifier = await scramVerifier('pencil', { iterations: 4096, salt: unb64(RFC.salt) });
    expect(formatScramVerifier(verifier)).toBe(RFC.verifier);
    const server = new ScramServer({
      verifier,
      mechanism: 'SCRAM-SHA-256',
      channelBinding: null,
      nonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
    });
    expect(s(server.handleClientFirst(b(RFC.clientFirst)))).toBe(RFC.serverFirst);
    expect(s(await server.handleClientFinal(b(RFC.clientFinal)))).toBe(RFC.serverFinal);
    expect(server.done).toBe(true);
  });

  it('a tampered server signature is rejected', async () => {
    const client = new ScramClient({
      password: 'pencil',
      mechanism: 'SCRAM-SHA-256',
      nonce: 'rOprNGfwEbeRWgbNEkqO',
    });
    client.clientFirstMessage();
    await client.handleServerFirst(b(RFC.serverFirst));
    // Our n= is empty, so the AuthMessage (and the real signature) differs from the RFC's: still a
    // well-formed 32-byte signature, just the wrong one.
    await expect(client.handleServerFinal(b(RFC.serverFinal))).rejects.toThrow('incorrect server signature');
    expect(client.done).toBe(false);
  });
});

describe('SCRAM client against ScramServer', () => {
  it('succeeds without channel binding (gs2 "n")', async () => {
    const verifier = await scramVerifier('secret', { iterations: ITER });
    const { client, server } = await exchange({ password: 'secret' }, { verifier });
    expect(client.done && server.done).toBe(true);
  });

  it('sends n,, / y,, / p=tls-server-end-point,, as libpq does', () => {
    const first = (o: Partial<ScramClientOptions>) =>
      s(
        new ScramClient({
          password: 'x',
          mechanism: 'SCRAM-SHA-256',
          nonce: 'abc',
          ...o,
        }).clientFirstMessage(),
      );
    expect(first({})).toBe('n,,n=,r=abc');
    expect(first({ clientSupportsBinding: true })).toBe('y,,n=,r=abc');
    expect(first({ channelBinding: { type: 'tls-server-end-point', data: CB } })).toBe('y,,n=,r=abc');
    expect(
      first({ channelBinding: { type: 'tls-server-end-point', data: CB }, clientSupportsBinding: false }),
    ).toBe('n,,n=,r=abc');
    expect(
      first({ mechanism: 'SCRAM-SHA-256-PLUS', channelBinding: { type: 'tls-server-end-point', data: CB } }),
    ).toBe('p=tls-server-end-point,,n=,r=abc');
  });

  it('succeeds with gs2 "y" when the server did not advertise PLUS', async () => {
    const verifier = await scramVerifier('secret', { iterations: ITER });
    const { client } = await exchange(
      { password: 'secret', clientSupportsBinding: true },
      { verifier, channelBinding: CB, plusAdvertised: false },
    );
    expect(client.done).toBe(true);
  });

  it('succeeds with gs2 "n" on TLS even when PLUS was advertised (channel_binding=disable)', async () => {
    const verifier = await scramVerifier('secret', { iterations: ITER });
    const { client } = await exchange({ password: 'secret' }, { verifier, channelBinding: CB });
    expect(client.done).toBe(true);
  });

  it('succeeds with SCRAM-SHA-256-PLUS and matching channel-binding data', async () => {
    const verifier = await scramVerifier('secret', { iterations: ITER });
    const client = new ScramClient({
      password: 'secret',
      mechanism: 'SCRAM-SHA-256-PLUS',
      channelBinding: { type: 'tls-server-end-point', data: CB },
    });
    const server = new ScramServer({ verifier, mechanism: 'SCRAM-SHA-256-PLUS', channelBinding: CB });
    const clientFinal = await client.handleServerFirst(server.handleClientFirst(client.clientFirstMessage()));
    const cbind = /^c=([^,]*),/.exec(s(clientFinal))?.[1] ?? '';
    expect(unb64(cbind)).toEqual(new Uint8Array([...b('p=tls-server-end-point,,'), ...CB]));
    await client.handleServerFinal(await server.handleClientFinal(clientFinal));
    expect(client.done && server.done).toBe(true);
  });

  it('fails when the channel-binding data differs (MITM with another certificate)', async () => {
    const verifier = await scramVerifier('secret', { iterations: ITER });
    await expect(
      exchange(
        {
          password: 'secret',
          mechanism: 'SCRAM-SHA-256-PLUS',
          channelBinding: { type: 'tls-server-end-point', data: OTHER_CB },
        },
        { verifier, channelBinding: CB },
      ),
    ).rejects.toThrow(new AuthError('SCRAM channel binding check failed'));
  });

  it('fails at the server with a wrong password', async () => {
    const verifier = await scramVerifier('secret', { iterations: ITER });
    await expect(exchange({ password: 'Secret' }, { verifier })).rejects.toThrow(AuthError);
    await expect(exchange({ password: 'Secret' }, { verifier })).rejects.toThrow(/invalid client proof/);
  });

  it('prepares non-ASCII passwords with SASLprep on both sides', async () => {
    const verifier = await scramVerifier('I\u00ADX', { iterations: ITER, salt: unb64(RFC.salt) });
    expect(verifier).toEqual(await scramVerifier('\u2168', { iterations: ITER, salt: unb64(RFC.salt) }));
    const { client } = await exchange({ password: '\u2168' }, { verifier });
    expect(client.done).toBe(true);
  });

  it('fails at the client when the server signature is tampered with', async () => {
    const verifier = await scramVerifier('secret', { iterations: ITER });
    const client = new ScramClient({ password: 'secret', mechanism: 'SCRAM-SHA-256' });
    const server = new ScramServer({ verifier, mechanism: 'SCRAM-SHA-256', channelBinding: null });
    const final = await client.handleServerFirst(server.handleClientFirst(client.clientFirstMessage()));
    const v = unb64(s(await server.handleClientFinal(final)).slice(2));
    v[31] = (v[31] ?? 0) ^ 1;
    await expect(client.handleServerFinal(b(`v=${b64(v)}`))).rejects.toThrow(
      new AuthError('incorrect server signature'),
    );
  });

  it('reports e= errors from the server, sanitized', async () => {
    const client = new ScramClient({
      password: 'x',
      mechanism: 'SCRAM-SHA-256',
      nonce: 'abc',
      maxIterations: 10,
    });
    client.clientFirstMessage();
    await client.handleServerFirst(b('r=abcdef,s=c2FsdA==,i=2'));
    await expect(client.handleServerFinal(b('e=invalid-proof\x1b[31m'))).rejects.toThrow(
      new AuthError('error received from server in SCRAM exchange: invalid-proof?[31m'),
    );
  });

  it('rejects a server-first whose nonce does not extend ours', async () => {
    for (const nonce of ['abc', 'abX123', 'ab', 'xyzabc123', '']) {
      const client = new ScramClient({ password: 'x', mechanism: 'SCRAM-SHA-256', nonce: 'abc' });
      client.clientFirstMessage();
      await expect(client.handleServerFirst(b(`r=${nonce},s=c2FsdA==,i=2`)), nonce).rejects.toThrow(
        new AuthError('invalid SCRAM response (nonce mismatch)'),
      );
    }
  });

  it('rejects invalid, negative and excessive iteration counts', async () => {
    const attempt = async (i: string, maxIterations?: number) => {
      const client = new ScramClient({
        password: 'x',
        mechanism: 'SCRAM-SHA-256',
        nonce: 'abc',
        ...(maxIterations ? { maxIterations } : {}),
      });
      client.clientFirstMessage();
      return client.handleServerFirst(b(`r=abcdef,s=c2FsdA==,i=${i}`));
    };
    for (const i of ['0', '-1', '-4096', '', '1.5', '1e3', '0x10', ' 1', '+4096', '04096']) {
      await expect(attempt(i), i).rejects.toThrow(
        new ProtocolError('malformed SCRAM message (invalid iteration count)'),
      );
    }
    await expect(attempt(String(SCRAM_DEFAULT_MAX_ITERATIONS + 1))).rejects.toThrow(
      /SCRAM iteration count 1000001 exceeds the limit of 1000000/,
    );
    await expect(attempt('9'.repeat(400))).rejects.toThrow(AuthError);
    await expect(attempt('2147483648')).rejects.toThrow(AuthError);
    await expect(attempt('101', 100)).rejects.toThrow(/exceeds the limit of 100/);
    await expect(attempt('100', 100)).resolves.toBeInstanceOf(Uint8Array);
    expect(() => new ScramClient({ password: 'x', mechanism: 'SCRAM-SHA-256', maxIterations: 0 })).toThrow(
      OptionError,
    );
  });

  it('rejects malformed server-first / server-final messages with libpq-style errors', async () => {
    const first = async (msg: string | Uint8Array) => {
      const client = new ScramClient({ password: 'x', mechanism: 'SCRAM-SHA-256', nonce: 'abc' });
      client.clientFirstMessage();
      return client.handleServerFirst(typeof msg === 'string' ? b(msg) : msg);
    };
    await expect(first('s=c2FsdA==,r=abcdef,i=2')).rejects.toThrow(/attribute "r" expected/);
    await expect(first('r=abcdef,i=2,s=c2FsdA==')).rejects.toThrow(/attribute "s" expected/);
    await expect(first('r=abcdef,s=c2FsdA=,i=2')).rejects.toThrow('malformed SCRAM message (invalid salt)');
    await expect(first('r=abcdef,s=c2 FsdA==,i=2')).rejects.toThrow('(invalid salt)');
    await expect(first('r=abcdef,s=c2FsdA==,i=2,x=1')).rejects.toThrow(/garbage at end of server-first/);
    await expect(first('r=abcd ef,s=c2FsdA==,i=2')).rejects.toThrow(/invalid nonce/);
    await expect(first(Uint8Array.of(...b('r=abcdef,s=c2FsdA==,i=2'), 0))).rejects.toThrow(/length mismatch/);
    await expect(first('')).rejects.toThrow(ProtocolError);

    const final = async (msg: string) => {
      const client = new ScramClient({ password: 'x', mechanism: 'SCRAM-SHA-256', nonce: 'abc' });
      client.clientFirstMessage();
      await client.handleServerFirst(b('r=abcdef,s=c2FsdA==,i=2'));
      return client.handleServerFinal(b(msg));
    };
    await expect(final('v=AAAA')).rejects.toThrow('malformed SCRAM message (invalid server signature)');
    // Non-canonical base64 (unused trailing bits set) for 32 zero bytes: refused, not decoded to zeros.
    await expect(final(`v=${'A'.repeat(42)}B=`)).rejects.toThrow('(invalid server signature)');
    await expect(final('x=1')).rejects.toThrow(/attribute "v" expected/);
    await expect(final(`v=${b64(new Uint8Array(32))},x=1`)).rejects.toThrow(/garbage at end of server-final/);
    await expect(final(`v=${b64(new Uint8Array(32))}`)).rejects.toThrow('incorrect server signature');
  });

  it('refuses steps out of order, and everything after a failure', async () => {
    const client = new ScramClient({ password: 'x', mechanism: 'SCRAM-SHA-256', nonce: 'abc' });
    await expect(client.handleServerFirst(b('r=abcdef,s=c2FsdA==,i=2'))).rejects.toThrow(/out of order/);
    expect(() => client.clientFirstMessage()).toThrow(AuthError); // the failure is sticky

    const c2 = new ScramClient({ password: 'x', mechanism: 'SCRAM-SHA-256', nonce: 'abc' });
    c2.clientFirstMessage();
    expect(() => c2.clientFirstMessage()).toThrow(/clientFirstMessage called out of order/);

    const c3 = new ScramClient({ password: 'x', mechanism: 'SCRAM-SHA-256', nonce: 'abc' });
    c3.clientFirstMessage();
    await expect(c3.handleServerFinal(b('v=AAAA'))).rejects.toThrow(/out of order/);

    const c4 = new ScramClient({ password: 'x', mechanism: 'SCRAM-SHA-256', nonce: 'abc' });
    c4.clientFirstMessage();
    // Concurrent calls: the second is refused while the first is still deriving keys.
    const p1 = c4.handleServerFirst(b('r=abcdef,s=c2FsdA==,i=2'));
    await expect(c4.handleServerFirst(b('r=abcdef,s=c2FsdA==,i=2'))).rejects.toThrow(/out of order/);
    await p1.catch(() => undefined);

    const verifier = await scramVerifier('x', { iterations: ITER });
    const server = new ScramServer({ verifier, mechanism: 'SCRAM-SHA-256', channelBinding: null });
    await expect(server.handleClientFinal(b('c=biws,r=abc,p=AAAA'))).rejects.toThrow(/out of order/);
    const s2 = new ScramServer({ verifier, mechanism: 'SCRAM-SHA-256', channelBinding: null });
    s2.handleClientFirst(b('n,,n=,r=abc'));
    expect(() => s2.handleClientFirst(b('n,,n=,r=abc'))).toThrow(/out of order/);
    const { client: done, server: sdone } = await exchange({ password: 'x' }, { verifier });
    await expect(done.handleServerFinal(b('v=AAAA'))).rejects.toThrow(/out of order/);
    await expect(sdone.handleClientFinal(b('c=biws'))).rejects.toThrow(/out of order/);
  });

  it('requires channel-binding data for SCRAM-SHA-256-PLUS', () => {
    expect(() => new ScramClient({ password: 'x', mechanism: 'SCRAM-SHA-256-PLUS' })).toThrow(AuthError);
  });
});

describe('ScramServer checks on the client messages', () => {
  const server = async (o: Partial<ScramServerOptions> = {}) =>
    new ScramServer({
      verifier: await scramVerifier('pw', { iterations: ITER }),
      mechanism: 'SCRAM-SHA-256',
      channelBinding: null,
      ...o,
    });

  it('fails the downgrade: gs2 "y" while the server advertised PLUS', async () => {
    const srv = await server({ channelBinding: CB });
    expect(() => srv.handleClientFirst(b('y,,n=,r=abc'))).toThrow(/SCRAM channel binding negotiation error/);
    expect(() => srv.handleClientFirst(b('y,,n=,r=abc'))).toThrow(AuthError);
    // End to end: a client that saw no PLUS (stripped by a MITM) and says so.
    const verifier = await scramVerifier('pw', { iterations: ITER });
    await expect(
      exchange({ password: 'pw', clientSupportsBinding: true }, { verifier, channelBinding: CB }),
    ).rejects.toThrow(/negotiation error/);
  });

  it('validates the selected mechanism against what was advertised', async () => {
    const plusNoTls = await server({ mechanism: 'SCRAM-SHA-256-PLUS' });
    expect(() => plusNoTls.handleClientFirst(b('p=tls-server-end-point,,n=,r=abc'))).toThrow(
      new ProtocolError('client selected an invalid SASL authentication mechanism'),
    );
    const plusNotAdvertised = await server({
      mechanism: 'SCRAM-SHA-256-PLUS',
      channelBinding: CB,
      plusAdvertised: false,
    });
    expect(() => plusNotAdvertised.handleClientFirst(b('p=tls-server-end-point,,n=,r=abc'))).toThrow(
      /invalid SASL authentication mechanism/,
    );
    const other = await server({ mechanism: 'SCRAM-SHA-1' });
    expect(() => other.handleClientFirst(b('n,,n=,r=abc'))).toThrow(/invalid SASL authentication mechanism/);
  });

  it('infers the mechanism from the gs2 header when not given', async () => {
    const verifier = await scramVerifier('pw', { iterations: ITER });
    for (const plus of [false, true]) {
      const client = new ScramClient({
        password: 'pw',
        mechanism: plus ? 'SCRAM-SHA-256-PLUS' : 'SCRAM-SHA-256',
        channelBinding: { type: 'tls-server-end-point', data: CB },
        clientSupportsBinding: false,
      });
      const srv = new ScramServer({ verifier, channelBinding: CB });
      const final = await client.handleServerFirst(srv.handleClientFirst(client.clientFirstMessage()));
      expect(srv.selectedMechanism).toBe(client.mechanism);
      await client.handleServerFinal(await srv.handleClientFinal(final));
      expect(client.done).toBe(true);
    }
    const noTls = new ScramServer({ verifier, channelBinding: null });
    expect(() => noTls.handleClientFirst(b('p=tls-server-end-point,,n=,r=abc'))).toThrow(
      /invalid SASL authentication mechanism/,
    );
    const downgrade = new ScramServer({ verifier, channelBinding: CB });
    expect(() => downgrade.handleClientFirst(b('y,,n=,r=abc'))).toThrow(/negotiation error/);
  });

  it('checks the gs2 header against the mechanism', async () => {
    const plain = await server();
    expect(() => plain.handleClientFirst(b('p=tls-server-end-point,,n=,r=abc'))).toThrow(
      /without channel binding, but the SCRAM message includes channel binding data/,
    );
    const plusN = await server({ mechanism: 'SCRAM-SHA-256-PLUS', channelBinding: CB });
    expect(() => plusN.handleClientFirst(b('n,,n=,r=abc'))).toThrow(
      /selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data/,
    );
    const plusY = await server({ mechanism: 'SCRAM-SHA-256-PLUS', channelBinding: CB });
    expect(() => plusY.handleClientFirst(b('y,,n=,r=abc'))).toThrow(ProtocolError);
    const unique = await server({ mechanism: 'SCRAM-SHA-256-PLUS', channelBinding: CB });
    expect(() => unique.handleClientFirst(b('p=tls-unique,,n=,r=abc'))).toThrow(
      new ProtocolError('unsupported SCRAM channel-binding type "tls-unique"'),
    );
  });

  it('rejects authzid, mandatory extensions, bad nonces and malformed headers', async () => {
    const first = async (m: string) => (await server()).handleClientFirst(b(m));
    await expect(first('n,a=admin,n=,r=abc')).rejects.toThrow(
      new AuthError('client uses authorization identity, but it is not supported'),
    );
    await expect(first('n,,m=ext,n=,r=abc')).rejects.toThrow(/unsupported SCRAM extension/);
    await expect(first('n,,n=,r=ab c')).rejects.toThrow('non-printable characters in SCRAM nonce');
    await expect(first('n,,n=,r=')).rejects.toThrow('non-printable characters in SCRAM nonce');
    await expect(first('n,,n=,r=abc\u00e9')).rejects.toThrow(ProtocolError);
    await expect(first('x,,n=,r=abc')).rejects.toThrow(/unexpected channel-binding flag 'x'/);
    await expect(first('n;,n=,r=abc')).rejects.toThrow(/comma expected/);
    await expect(first('n,,r=abc')).rejects.toThrow(/attribute "n" expected/);
    await expect(first('n,,n=,r=abc,1=x')).rejects.toThrow(/attribute expected/);
    await expect(first('n,,n=someone,r=abc,x=ignored')).resolves.toBeInstanceOf(Uint8Array);
    await expect(first('')).rejects.toThrow(/empty client-first-message/);
  });

  it('checks c=, the final nonce and the proof in client-final', async () => {
    const srv = async () => {
      const x = await server({ nonce: 'SRV' });
      x.handleClientFirst(b('n,,n=,r=abc'));
      return x;
    };
    const proof = b64(new Uint8Array(32));
    await expect((await srv()).handleClientFinal(b(`c=eSws,r=abcSRV,p=${proof}`))).rejects.toThrow(
      'unexpected SCRAM channel-binding attribute in client-final-message',
    );
    await expect((await srv()).handleClientFinal(b(`c=biws,r=abcSRX,p=${proof}`))).rejects.toThrow(
      new ProtocolError('invalid SCRAM response (nonce does not match)'),
    );
    await expect((await srv()).handleClientFinal(b(`c=biws,r=abcSRV,p=AAAA`))).rejects.toThrow(
      /malformed proof/,
    );
    await expect((await srv()).handleClientFinal(b(`c=biws,r=abcSRV`))).rejects.toThrow(/end of message/);
    await expect((await srv()).handleClientFinal(b(`c=biws,r=abcSRV,p=${proof},x=1`))).rejects.toThrow(
      /garbage at the end of client-final-message/,
    );
    await expect((await srv()).handleClientFinal(b(`c=biws,r=abcSRV,x=ext,p=${proof}`))).rejects.toThrow(
      /invalid client proof/,
    );
  });

  it('a mock verifier lets the exchange run and fail like a wrong password', async () => {
    const seed = 'cluster-secret';
    const mock = await mockVerifier('nobody', seed, 8192);
    expect(mock.iterations).toBe(8192);
    expect(mock.salt).toHaveLength(16);
    expect(await mockVerifier('nobody', seed, 8192)).toEqual(mock); // deterministic per user
    expect((await mockVerifier('somebody', seed, 8192)).salt).not.toEqual(mock.salt);
    expect((await mockVerifier('nobody', 'other-seed', 8192)).salt).not.toEqual(mock.salt);
    const client = new ScramClient({ password: 'guess', mechanism: 'SCRAM-SHA-256', maxIterations: 10_000 });
    const server = new ScramServer({
      verifier: mock,
      mechanism: 'SCRAM-SHA-256',
      channelBinding: null,
      doomed: true,
    });
    const serverFirst = s(server.handleClientFirst(client.clientFirstMessage()));
    expect(serverFirst).toMatch(new RegExp(`,s=${b64(mock.salt).replaceAll('+', '\\+')},i=8192$`));
    const final = await client.handleServerFirst(b(serverFirst));
    // The same error as a wrong password for an existing role.
    const wrong = await scramVerifier('pw', { iterations: ITER });
    const wrongPassword = await exchange({ password: 'nope' }, { verifier: wrong }).catch((e: Error) => e);
    expect(wrongPassword).toBeInstanceOf(AuthError);
    await expect(server.handleClientFinal(final)).rejects.toThrow((wrongPassword as Error).message);
  });

  it('doomed fails even with the right password', async () => {
    const verifier = await scramVerifier('pw', { iterations: ITER });
    await expect(exchange({ password: 'pw' }, { verifier, doomed: true })).rejects.toThrow(AuthError);
  });
});

describe('PostgreSQL verifier format', () => {
  it('matches an independently computed verifier and round-trips', async () => {
    const v = parseScramVerifier(RFC.verifier);
    expect(v).not.toBeNull();
    expect(v?.iterations).toBe(4096);
    expect(formatScramVerifier(v as ScramVerifier)).toBe(RFC.verifier);
    expect(await verifyScramPlainPassword('pencil', v as ScramVerifier)).toBe(true);
    expect(await verifyScramPlainPassword('pencil ', v as ScramVerifier)).toBe(false);
  });

  it('hashes non-UTF-8 and SASLprep-failing passwords as raw bytes (pg_saslprep fallback)', async () => {
    // python3: hashlib.pbkdf2_hmac('sha256', b'\xff\xfepw', salt, 4096) → ClientKey/StoredKey/ServerKey
    const salt = unb64(RFC.salt);
    expect(formatScramVerifier(await scramVerifier(Uint8Array.of(0xff, 0xfe, 0x70, 0x77), { salt }))).toBe(
      'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$iNYQ2kKY3gaYMecdl9HfzwhcL1yLeBjn8HlaYya+HxU=:SJ1KhnxUN7JhSCn3Vx1WBRVMmO1oMf2rS9MrTVhMNGE=',
    );
    // '\u0627\u0031' fails the bidi rule: the raw UTF-8 bytes are hashed.
    expect(formatScramVerifier(await scramVerifier('\u0627\u0031', { salt }))).toBe(
      'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$HSu4ZQSsYlkDf0538V5ZVlRrs+7af0i5J2cWwOjKGQ0=:32lF/Jh/AEoe3PzRwa4rQtK9V7Aef/VkfBjvvPfjnS4=',
    );
    // 'I\u00ADX' prepares to 'IX'.
    expect(formatScramVerifier(await scramVerifier('I\u00ADX', { salt }))).toBe(
      'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$jm4XkHvFe7q0xZ4vmAKJUiTKPr1F+7MXnYyksTUVeBE=:EqXM4c5+I7lQ5vHl5Ngu2rY8DBMM1XjG0dY6GEjwLx0=',
    );
  });

  it('rejects malformed secrets', () => {
    const [head, keys] = RFC.verifier.split('$').slice(1);
    for (const bad of [
      '',
      'md53175bce1d3201d16594cebf9d7eb3f9d',
      RFC.verifier.replace('SCRAM-SHA-256', 'SCRAM-SHA-1'),
      RFC.verifier.replace('4096', '0'),
      RFC.verifier.replace('4096', '-1'),
      RFC.verifier.replace('4096', 'x'),
      RFC.verifier.replace('4096', '99999999999'),
      `SCRAM-SHA-256$${head}`,
      `SCRAM-SHA-256$4096:$${keys}`,
      `SCRAM-SHA-256$4096:!!!!$${keys}`,
      `SCRAM-SHA-256$${head}$AAAA:${keys?.split(':')[1]}`,
      `SCRAM-SHA-256$${head}$${keys}:extra`,
      `${RFC.verifier}$`,
    ]) {
      expect(parseScramVerifier(bad), bad).toBeNull();
    }
  });

  it('round-trips arbitrary verifiers', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 0xffff_ffff }),
        fc.uint8Array({ minLength: 1, maxLength: 40 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        (iterations, salt, storedKey, serverKey) => {
          const v = { iterations, salt, storedKey, serverKey };
          expect(parseScramVerifier(formatScramVerifier(v))).toEqual(v);
        },
      ),
      fcParams(),
    );
  });
});

describe('SCRAM robustness (property tests)', () => {
  it('exchanges succeed for arbitrary passwords, both mechanisms', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }),
          fc.uint8Array({ minLength: 1, maxLength: 12 }),
        ),
        fc.boolean(),
        async (password, plus) => {
          const verifier = await scramVerifier(password, { iterations: 2 });
          const { client, server } = await exchange(
            plus
              ? {
                  password,
                  mechanism: 'SCRAM-SHA-256-PLUS',
                  channelBinding: { type: 'tls-server-end-point', data: CB },
                }
              : { password },
            { verifier, channelBinding: plus ? CB : null },
          );
          expect(client.done && server.done).toBe(true);
        },
      ),
      fcParams(40),
    );
  });

  const serverFirstArb = fc
    .tuple(
      fc.constantFrom('r=', 's=', 'i=', 'e=', 'v=', 'm=', ''),
      fc.constantFrom('abc', 'abcdef', 'ab', 'xyz'),
      fc.constantFrom(',s=', ',', ''),
      fc.constantFrom('c2FsdA==', '', '!!', 'c2FsdA'),
      fc.constantFrom(',i=', ',', ''),
      fc.constantFrom('1', '2', '0', '-3', '99999999999', '1x', ''),
      fc.string({ maxLength: 4 }),
    )
    .map((parts) => b(parts.join('')));
  const bytesArb = fc.oneof(fc.uint8Array({ maxLength: 64 }), serverFirstArb);

  it('malformed server messages only ever throw AuthError/ProtocolError', async () => {
    await fc.assert(
      fc.asyncProperty(bytesArb, bytesArb, async (first, final) => {
        const client = new ScramClient({
          password: 'x',
          mechanism: 'SCRAM-SHA-256',
          nonce: 'abc',
          maxIterations: 10,
        });
        client.clientFirstMessage();
        try {
          await client.handleServerFirst(first);
          await client.handleServerFinal(final);
        } catch (e) {
          expect(isPgConnAuthOrProtocol(e), String(e)).toBe(true);
          return;
        }
        throw new Error('a random server-final cannot carry the right signature');
      }),
      fcParams(200),
    );
  });

  const clientMsgArb = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc
      .tuple(
        fc.constantFrom('n', 'y', 'p=tls-server-end-point', 'p=x', 'a', ''),
        fc.constantFrom(',,', ',a=u,', ',', ''),
        fc.constantFrom('n=,r=abc', 'n=u,r=', 'r=abc', 'm=1,n=,r=abc', 'n=,r=a,b', ''),
        fc.string({ maxLength: 4 }),
      )
      .map((p) => b(p.join(''))),
  );
  const clientFinalArb = fc.oneof(
    fc.uint8Array({ maxLength: 80 }),
    fc
      .tuple(
        fc.constantFrom('c=biws', 'c=eSws', 'c=', 'r=abc', ''),
        fc.constantFrom(',r=abcSRV', ',r=abc', ','),
        fc.constantFrom(`,p=${b64(new Uint8Array(32))}`, ',p=AAAA', ',p=', ',x=1', ''),
        fc.string({ maxLength: 4 }),
      )
      .map((p) => b(p.join(''))),
  );

  it('malformed client messages only ever throw AuthError/ProtocolError', async () => {
    const verifier = await scramVerifier('pw', { iterations: 2 });
    await fc.assert(
      fc.asyncProperty(clientMsgArb, clientFinalArb, fc.boolean(), async (first, final, tls) => {
        const server = new ScramServer({
          verifier,
          mechanism: tls ? 'SCRAM-SHA-256-PLUS' : 'SCRAM-SHA-256',
          channelBinding: tls ? CB : null,
          nonce: 'SRV',
        });
        try {
          server.handleClientFirst(first);
          await server.handleClientFinal(final);
        } catch (e) {
          expect(isPgConnAuthOrProtocol(e), String(e)).toBe(true);
          return;
        }
        throw new Error('a random client-final cannot carry a valid proof');
      }),
      fcParams(200),
    );
  });

  it('single-byte corruptions of a valid exchange are always detected', async () => {
    const verifier = await scramVerifier('pw', { iterations: 2 });
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.constantFrom(0, 1, 2, 3),
        async (pos, x, which) => {
          const client = new ScramClient({
            password: 'pw',
            mechanism: 'SCRAM-SHA-256-PLUS',
            channelBinding: { type: 'tls-server-end-point', data: CB },
          });
          const server = new ScramServer({ verifier, mechanism: 'SCRAM-SHA-256-PLUS', channelBinding: CB });
          const flip = (m: Uint8Array, k: number) => {
            if (k !== which) return m;
            const c = m.slice();
            const i = pos % c.length;
            c[i] = (c[i] ?? 0) ^ x;
            return c;
          };
          try {
            const sf = flip(server.handleClientFirst(flip(client.clientFirstMessage(), 0)), 1);
            const cf = flip(await client.handleServerFirst(sf), 2);
            await client.handleServerFinal(flip(await server.handleClientFinal(cf), 3));
          } catch (e) {
            expect(isPgConnAuthOrProtocol(e), String(e)).toBe(true);
            return;
          }
          // Only a corruption that cancels out could succeed, and none does (e.g. both sides agree on bytes).
          throw new Error(`corruption of message ${which} at ${pos} went unnoticed`);
        },
      ),
      fcParams(150),
    );
  });
});
