/**
 * Byte-level negotiation cases against a scripted fake server over real sockets (negotiate +
 * nodeTransport): the one-byte SSL replies and their CVEs (reference §2.3, §9), the state machine
 * (§3.4–§3.6) with a peer that closes, stalls or sends garbage at every step, password hygiene,
 * and direct TLS without ALPN (§5). After every case the server side must see the client's socket
 * close: a failed negotiation leaks nothing.
 */
import { readFileSync } from 'node:fs';
import {
  AuthError,
  ConnectionError,
  type HandshakeConfig,
  type NegotiateOptions,
  negotiate,
  OptionError,
  PgConnError,
  ProtocolError,
  parseRequireAuth,
  TlsError,
} from '@pgconn/core';
import {
  backend,
  type CertSet,
  createCertSet,
  type FakePeer,
  type FakeScript,
  type FakeServer,
  type FakeServerOptions,
  includesBytes,
  isSslRequest,
  SSL_REQUEST_BYTES,
  startFakeServer,
  v2Error,
} from '@pgconn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, nodeTransport } from '../src/index.ts';

const PASSWORD = 'sup3rs3cret';

let certs: CertSet;
let tlsOpts: FakeServerOptions;
let noAlpnTlsOpts: FakeServerOptions;
let rootCert: string;

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  certs = await createCertSet();
  const { certPem, keyPem } = certs.server.localhost;
  tlsOpts = { tls: { cert: certPem, key: keyPem } };
  noAlpnTlsOpts = { tls: { cert: certPem, key: keyPem, alpnProtocols: [] } };
  rootCert = readFileSync(certs.bundles.rootServerCa, 'utf8');
}, 30_000);

afterAll(async () => {
  await certs?.remove();
  // Let late rejections (a promise nobody awaited, rejected by a socket closing) surface first.
  await new Promise((r) => setTimeout(r, 50));
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
});

interface Outcome {
  error: PgConnError | null;
  ms: number;
  server: FakeServer;
  /** Per connection, what the client sent. */
  received: Uint8Array[];
}

function config(over: Partial<HandshakeConfig> = {}): HandshakeConfig {
  return { host: 'localhost', user: 'alice', database: 'db', password: PASSWORD, ...over };
}

/**
 * Runs one negotiation against a fake server and checks the invariants every case shares: it fails
 * (unless `expectSuccess`) with a PgConnError, and the server sees every socket close within 1 s.
 */
async function run(
  script: FakeScript,
  cfg: HandshakeConfig,
  opts: { server?: FakeServerOptions; negotiate?: NegotiateOptions; expectSuccess?: boolean } = {},
): Promise<Outcome> {
  const server = await startFakeServer(script, opts.server);
  try {
    const t0 = performance.now();
    let error: PgConnError | null = null;
    try {
      const conn = await negotiate(nodeTransport, { host: server.host, port: server.port }, cfg, {
        connectTimeout: 10,
        ...opts.negotiate,
      });
      await conn.close();
      if (!opts.expectSuccess) throw new Error('negotiation unexpectedly succeeded');
    } catch (e) {
      if (!(e instanceof PgConnError)) throw e;
      error = e;
    }
    const ms = performance.now() - t0;
    if (opts.expectSuccess && error) throw error;
    await server.allClosed(1000);
    return { error, ms, server, received: server.received };
  } finally {
    await server.close();
  }
}

const messageOf = (o: Outcome): string => o.error?.message ?? '(no error)';

/** Did the client ever send a StartupMessage (protocol 3.x) on this connection? */
function sentStartup(bytes: Uint8Array): boolean {
  for (let i = 0; i + 8 <= bytes.length; i++) {
    if (
      bytes[i + 4] === 0 &&
      bytes[i + 5] === 3 &&
      bytes[i + 6] === 0 &&
      includesBytes(bytes.subarray(i), 'user')
    )
      return true;
  }
  return false;
}

describe('one-byte replies to SSLRequest (§2.3, §9)', () => {
  it.each(['require', 'prefer'] as const)(
    "'S' followed by plaintext in the same write fails (CVE-2021-23222), sslmode=%s",
    async (sslmode) => {
      const o = await run(async (peer) => {
        await peer.readStartupPacket();
        // 'S' and an AuthenticationOk in one write: a man in the middle injecting plaintext.
        await peer.write(new Uint8Array([0x53, ...backend({ type: 'AuthenticationOk' })]));
        await peer.stall();
      }, config({ sslmode }));
      expect(o.error).toBeInstanceOf(ProtocolError);
      expect(messageOf(o)).toContain('received unencrypted data after SSL response');
      // No TLS ClientHello, no StartupMessage, no fallback connection: just the SSLRequest.
      expect(o.received).toEqual([SSL_REQUEST_BYTES]);
    },
  );

  it.each(['prefer', 'require'] as const)(
    "'E' (v2 error) fails at once without showing the text and without fallback (CVE-2024-10977), sslmode=%s",
    async (sslmode) => {
      const o = await run(async (peer) => {
        await peer.readStartupPacket();
        await peer.write(v2Error('FATAL:  sorry, too many clients already \x1b[31mINJECTED'));
        await peer.stall();
      }, config({ sslmode }));
      expect(o.error).toBeInstanceOf(ProtocolError);
      expect(messageOf(o)).toContain('server sent an error response during SSL exchange');
      expect(messageOf(o)).not.toMatch(/too many|INJECTED|FATAL/);
      expect(messageOf(o)).not.toContain('\x1b');
      expect(o.server.connections).toBe(1);
      expect(o.received).toEqual([SSL_REQUEST_BYTES]);
    },
  );

  it.each(['require', 'verify-full'] as const)(
    "'N' under sslmode=%s fails before any StartupMessage or password",
    async (sslmode) => {
      const o = await run(
        async (peer) => {
          await peer.readStartupPacket();
          await peer.write('N');
          // Were the client to go on, ask it for a cleartext password.
          await peer.readStartupPacket();
          await peer.send({ type: 'AuthenticationCleartextPassword' });
          await peer.stall();
        },
        config({ sslmode, tls: { rootCert: [rootCert], rootCertPath: certs.bundles.rootServerCa } }),
      );
      expect(o.error).toBeInstanceOf(TlsError);
      expect(messageOf(o)).toContain('server does not support SSL, but SSL was required');
      expect(o.received).toEqual([SSL_REQUEST_BYTES]);
      expect(includesBytes(o.received[0]!, PASSWORD)).toBe(false);
    },
  );

  it("'N' under sslmode=prefer continues with a StartupMessage on the same connection", async () => {
    let startup: Uint8Array | null = null;
    const o = await run(
      async (peer) => {
        if (!isSslRequest(await peer.readStartupPacket())) throw new Error('expected an SSLRequest');
        await peer.write('N');
        startup = await peer.readStartupPacket();
        await peer.send(
          { type: 'AuthenticationOk' },
          { type: 'ParameterStatus', name: 'server_version', value: '18.0' },
          { type: 'BackendKeyData', processId: 42, secretKey: new Uint8Array([1, 2, 3, 4]) },
          { type: 'ReadyForQuery', status: 'I' },
        );
        const terminate = await peer.readMessage();
        if (terminate.type !== 0x58) throw new Error('expected Terminate');
        await peer.end();
      },
      config({ sslmode: 'prefer' }),
      { expectSuccess: true },
    );
    expect(o.error).toBeNull();
    expect(o.server.connections).toBe(1);
    expect(o.server.errors).toEqual([]);
    expect(startup).not.toBeNull();
    expect(sentStartup(startup!)).toBe(true);
    expect(includesBytes(startup!, 'alice')).toBe(true);
    expect(o.received[0]!.subarray(0, 8)).toEqual(SSL_REQUEST_BYTES);
  });
});

describe('the password never leaks', () => {
  it("sslmode=require and a server that answers 'N' then waits: no password is ever sent", async () => {
    const o = await run(
      async (peer) => {
        await peer.readStartupPacket();
        await peer.write('N');
        await peer.readStartupPacket();
        await peer.send({ type: 'AuthenticationCleartextPassword' });
        await peer.stall();
      },
      config({ sslmode: 'require' }),
    );
    expect(o.error).toBeInstanceOf(TlsError);
    expect(o.ms).toBeLessThan(1000);
    for (const r of o.received) expect(includesBytes(r, PASSWORD)).toBe(false);
    expect(o.received).toEqual([SSL_REQUEST_BYTES]);
  });

  const askPassword =
    (tls: boolean, md5: boolean): FakeScript =>
    async (peer) => {
      await peer.readStartupPacket();
      await peer.write(tls ? 'S' : 'N');
      if (tls) await peer.startTls();
      await peer.readStartupPacket();
      await peer.send(
        md5
          ? { type: 'AuthenticationMD5Password', salt: new Uint8Array([1, 2, 3, 4]) }
          : { type: 'AuthenticationCleartextPassword' },
      );
      await peer.stall();
    };

  it.each([
    ['cleartext', 'plaintext', false, false],
    ['cleartext', 'TLS', true, false],
    ['MD5', 'plaintext', false, true],
    ['MD5', 'TLS', true, true],
  ] as const)(
    'channel_binding=require and a %s password request over %s: nothing is answered',
    async (_a, _b, tls, md5) => {
      const o = await run(
        askPassword(tls, md5),
        config({ sslmode: tls ? 'require' : 'prefer', channelBinding: 'require' }),
        {
          server: tlsOpts,
        },
      );
      expect(o.error).toBeInstanceOf(AuthError);
      expect(messageOf(o)).toContain(
        "channel binding required but not supported by server's authentication request",
      );
      expect(o.server.connections).toBe(1);
      expect(o.server.errors).toEqual([]);
      for (const r of o.received) expect(includesBytes(r, PASSWORD)).toBe(false);
      // Nothing after the StartupMessage: no PasswordMessage ('p') of any kind.
      expect(o.server.peers[0]!.encrypted).toBe(tls);
      const startupEnd = o.received[0]!;
      expect(sentStartup(startupEnd)).toBe(true);
      // The SSLRequest (8 bytes), then the StartupMessage (decrypted, over TLS), then nothing.
      const afterStartup = lastPacketEnd(startupEnd, 8);
      expect(afterStartup).toBe(startupEnd.length);
    },
  );
});

/** Offset right after the untyped packet starting at `from` (its length word says where). */
function lastPacketEnd(bytes: Uint8Array, from: number): number {
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getInt32(from);
  return from + len;
}

// ---------------------------------------------------------------------------------------------
// A peer that misbehaves at each step.

type Step = 'accept' | 'sslrequest' | 'sslreply' | 'startup' | 'authok';
type Path = 'tls' | 'plain';
const STEPS: Step[] = ['accept', 'sslrequest', 'sslreply', 'startup', 'authok'];

const stepLabel: Record<Step, string> = {
  accept: 'right after accept',
  sslrequest: 'after reading the SSLRequest',
  sslreply: "after the SSL reply ('S': during the TLS handshake)",
  startup: 'after the StartupMessage',
  authok: 'after AuthenticationOk, before ReadyForQuery',
};

/** tls: sslmode=require and 'S' + TLS; plain: sslmode=prefer and 'N'. Neither path falls back. */
function upTo(step: Step, path: Path, then: (peer: FakePeer) => Promise<void> | void): FakeScript {
  return async (peer) => {
    if (step === 'accept') return then(peer);
    await peer.readStartupPacket();
    if (step === 'sslrequest') return then(peer);
    await peer.write(path === 'tls' ? 'S' : 'N');
    if (step === 'sslreply') return then(peer);
    if (path === 'tls') await peer.startTls();
    await peer.readStartupPacket();
    if (step === 'startup') return then(peer);
    await peer.send({ type: 'AuthenticationOk' });
    return then(peer);
  };
}

const pathConfig = (path: Path): HandshakeConfig =>
  config({ sslmode: path === 'tls' ? 'require' : 'prefer' });

const CASES: Array<[Step, Path]> = STEPS.flatMap((s) =>
  (['tls', 'plain'] as const).map((p): [Step, Path] => [s, p]),
);

describe('a peer that closes at each step', () => {
  it.each(CASES.flatMap(([s, p]) => (['end', 'destroy'] as const).map((how) => [s, p, how] as const)))(
    'closes %s (%s path, %s): typed error within 1 s',
    async (step, path, how) => {
      const o = await run(
        upTo(step, path, (peer) => (how === 'end' ? peer.end() : peer.destroy())),
        pathConfig(path),
        { server: tlsOpts },
      );
      expect(o.error).toSatisfy((e) => e instanceof ConnectionError || e instanceof TlsError);
      expect(o.ms).toBeLessThan(1000);
      expect(o.server.connections).toBe(1);
    },
  );
});

describe('a peer that stalls at each step', () => {
  it('ends every case with "timeout expired" at connect_timeout (concurrently)', async () => {
    const results = await Promise.all(
      CASES.map(async ([step, path]) => {
        const o = await run(
          upTo(step, path, (peer) => peer.stall()),
          pathConfig(path),
          { server: tlsOpts, negotiate: { connectTimeout: 2 } },
        );
        const e = o.error;
        return {
          label: `${stepLabel[step]} (${path})`,
          timeout:
            e instanceof ConnectionError && e.phase === 'timeout' && e.message.includes('timeout expired'),
          inWindow: o.ms > 1900 && o.ms < 3500,
          message: messageOf(o),
          ms: Math.round(o.ms),
          connections: o.server.connections,
        };
      }),
    );
    const bad = results.filter((r) => !r.timeout || !r.inWindow || r.connections !== 1);
    expect(bad).toEqual([]);
  }, 15_000);
});

// ---------------------------------------------------------------------------------------------
// Garbage: random, bit-flipped, or impossible lengths.

/** Deterministic pseudo-random bytes (xorshift32). */
function pseudoRandom(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const header = (type: string, length: number): Uint8Array => {
  const b = new Uint8Array(5);
  b[0] = type.charCodeAt(0);
  new DataView(b.buffer).setInt32(1, length);
  return b;
};

const flipBit = (bytes: Uint8Array, byte: number, bit: number): Uint8Array => {
  const b = bytes.slice();
  b[byte]! ^= 1 << bit;
  return b;
};

/** [label, the step after which the garbage replaces the next server reply, path, bytes, expected message]. */
const GARBAGE: Array<[string, Step, Path, Uint8Array, RegExp]> = [
  [
    'an unknown one-byte SSL reply',
    'sslrequest',
    'plain',
    new Uint8Array([0x58]),
    /invalid response to SSL negotiation: X/,
  ],
  [
    'random bytes instead of an Authentication message',
    'startup',
    'plain',
    pseudoRandom(64, 7), // starts e7 07 43 45
    /expected authentication request from server, but received \u00e7/,
  ],
  [
    'random bytes instead of an Authentication message, inside TLS',
    'startup',
    'tls',
    pseudoRandom(64, 11), // starts 6b 0b 6e 33
    /expected authentication request from server, but received k/,
  ],
  [
    'a bit-flipped AuthenticationOk type byte',
    'startup',
    'plain',
    flipBit(backend({ type: 'AuthenticationOk' }), 0, 5),
    /expected authentication request from server, but received r/,
  ],
  [
    'a bit-flipped AuthenticationOk length',
    'startup',
    'tls',
    flipBit(backend({ type: 'AuthenticationOk' }), 1, 7), // length 0x80000008
    /received invalid authentication request/,
  ],
  [
    'an Authentication length of 0x7fffffff',
    'startup',
    'plain',
    header('R', 0x7fffffff),
    /received invalid authentication request/,
  ],
  [
    'an Authentication length < 4',
    'startup',
    'plain',
    header('R', 3),
    /received invalid authentication request/,
  ],
  [
    "an Authentication length of 1 MiB (over libpq's 2000)",
    'startup',
    'plain',
    header('R', 0x100000),
    /invalid authentication request/,
  ],
  [
    "an ErrorResponse length of 1 MiB (over libpq's 30000)",
    'startup',
    'tls',
    header('E', 0x100000),
    /invalid error message/,
  ],
  [
    'a ReadyForQuery length of 0x7fffffff',
    'authok',
    'plain',
    header('Z', 0x7fffffff),
    /lost synchronization with server: got message type "Z", length 2147483647/,
  ],
  [
    'a message length < 4 after AuthenticationOk',
    'authok',
    'tls',
    header('S', 0),
    /invalid message length 0/,
  ],
  [
    'a ParameterStatus length of 1 MiB',
    'authok',
    'plain',
    header('S', 0x100000),
    /lost synchronization with server: got message type "S", length 1048576/,
  ],
  [
    'a ReadyForQuery with an invalid status',
    'authok',
    'plain',
    new Uint8Array([0x5a, 0, 0, 0, 5, 0x51]),
    /invalid transaction status "Q"/,
  ],
  [
    'a DataRow during startup',
    'authok',
    'tls',
    backend({ type: 'DataRow', fields: [null] }),
    /unexpected message from server during startup/,
  ],
];

describe('garbage at each step', () => {
  it.each(GARBAGE)('%s → ProtocolError, socket closed', async (_label, step, path, bytes, pattern) => {
    const o = await run(
      upTo(step, path, async (peer) => {
        await peer.write(bytes);
        await peer.stall();
      }),
      pathConfig(path),
      { server: tlsOpts },
    );
    expect(o.error).toBeInstanceOf(ProtocolError);
    expect(messageOf(o)).toMatch(pattern);
    expect(o.ms).toBeLessThan(1000);
    expect(o.server.connections).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------

describe('direct TLS (§5)', () => {
  it('fails when the server does not select ALPN "postgresql"', async () => {
    const o = await run(
      async (peer) => {
        await peer.startTls();
        await peer.stall();
      },
      config({ sslmode: 'require', sslnegotiation: 'direct' }),
      { server: noAlpnTlsOpts },
    );
    expect(o.error).toBeInstanceOf(TlsError);
    expect(messageOf(o)).toContain(
      'direct SSL connection was established without ALPN protocol negotiation extension',
    );
    expect(o.server.connections).toBe(1);
    // Nothing inside TLS: no StartupMessage.
    expect(o.received).toEqual([new Uint8Array(0)]);
  });

  it('succeeds when the server selects ALPN "postgresql" (control)', async () => {
    const o = await run(
      async (peer) => {
        await peer.startTls();
        await peer.readStartupPacket();
        await peer.send({ type: 'AuthenticationOk' }, { type: 'ReadyForQuery', status: 'I' });
        await peer.readMessage();
        await peer.end();
      },
      config({ sslmode: 'require', sslnegotiation: 'direct' }),
      { server: tlsOpts, expectSuccess: true },
    );
    expect(o.server.peers[0]!.alpnProtocol).toBe('postgresql');
    expect(sentStartup(o.received[0]!)).toBe(true);
  });
});

/* Hostile servers over a real socket (issue 8 §3): the message-level cases the in-memory fuzz feeds,
   here through nodeTransport, each failing closed with a typed error and a closed socket. */
describe('hostile server messages over a socket', () => {
  const ascii = new TextDecoder();
  const bytes = (s: string) => new TextEncoder().encode(s);

  /** Trust: AuthenticationOk, then `messages`, then ReadyForQuery. */
  const afterAuthOk =
    (...messages: Parameters<typeof backend>) =>
    async (peer: FakePeer) => {
      await peer.readStartupPacket();
      await peer.write(
        backend({ type: 'AuthenticationOk' }, ...messages, { type: 'ReadyForQuery', status: 'I' }),
      );
      await peer.stall();
    };

  /** A SCRAM-SHA-256 exchange whose server-first-message is `serverFirst(clientNonce)`, then `final`. */
  const scram = (serverFirst: (nonce: string) => string, final?: string) => async (peer: FakePeer) => {
    await peer.readStartupPacket();
    await peer.send({ type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256'] });
    const first = ascii.decode((await peer.readMessage()).body);
    const nonce = /r=([^,\0]+)/.exec(first)?.[1] ?? '';
    await peer.send({ type: 'AuthenticationSASLContinue', data: bytes(serverFirst(nonce)) });
    if (final === undefined) return void (await peer.stall());
    await peer.readMessage(); // client-final-message (its proof cannot be checked: no verifier here)
    await peer.send({ type: 'AuthenticationSASLFinal', data: bytes(final) });
    await peer.stall();
  };
  const salt = btoa('0123456789abcdef');
  const plain = config({ sslmode: 'disable' });

  it('5,000 ParameterStatus updates of one name are fine; 5,000 distinct names fail closed', async () => {
    const updates = Array.from({ length: 5000 }, (_, i) => ({
      type: 'ParameterStatus' as const,
      name: 'application_name',
      value: `v${i}`,
    }));
    const ok = await run(afterAuthOk(...updates), plain, { expectSuccess: true });
    expect(ok.error).toBeNull();
    const distinct = updates.map((m, i) => ({ ...m, name: `p${i}` }));
    const o = await run(afterAuthOk(...distinct), plain);
    expect(o.error).toBeInstanceOf(ProtocolError);
    expect(messageOf(o)).toContain('more than 1000 distinct run-time parameters');
  });

  it.each([3, 257])('BackendKeyData with a %i-byte cancel key fails closed', async (n) => {
    // Written by hand: core's encoder refuses such a key.
    const key = new Uint8Array(9 + n);
    new DataView(key.buffer).setUint8(0, 0x4b);
    new DataView(key.buffer).setInt32(1, 8 + n);
    new DataView(key.buffer).setInt32(5, 42);
    const o = await run(async (peer) => {
      await peer.readStartupPacket();
      await peer.write(backend({ type: 'AuthenticationOk' }));
      await peer.write(key);
      await peer.send({ type: 'ReadyForQuery', status: 'I' });
      await peer.stall();
    }, plain);
    expect(o.error).toBeInstanceOf(ProtocolError);
    expect(messageOf(o)).toMatch(/cancel key (with )?length/);
  });

  it('SCRAM: a nonce that does not extend the client nonce', async () => {
    const o = await run(
      scram(() => `r=someoneelsesnonce,s=${salt},i=4096`),
      plain,
    );
    expect(o.error).toBeInstanceOf(AuthError);
    expect(messageOf(o)).toContain('nonce mismatch');
  });

  it.each([
    ['0', /invalid iteration count/],
    ['999999999', /iteration count 999999999 exceeds the limit of 1000000/],
    ['99999999999999999999', /exceeds the limit/],
  ])('SCRAM: iteration count %s fails at once, before any key is derived', async (i, message) => {
    const o = await run(
      scram((nonce) => `r=${nonce}srv,s=${salt},i=${i}`),
      plain,
    );
    expect(o.error).toBeInstanceOf(PgConnError);
    expect(messageOf(o)).toMatch(message);
    expect(o.ms).toBeLessThan(2000);
  });

  describe('the SCRAM iteration cap through the public connect()', () => {
    /** connect() as a user calls it, against a server that demands `i` iterations. */
    const viaConnect = async (i: number, scramMaxIterations?: number) => {
      const server = await startFakeServer(scram((nonce) => `r=${nonce}srv,s=${salt},i=${i}`));
      try {
        const conninfo = `host=127.0.0.1 port=${server.port} user=alice password=${PASSWORD} sslmode=disable connect_timeout=2`;
        const t0 = performance.now();
        const error = await connect(conninfo, {
          env: {},
          ...(scramMaxIterations !== undefined ? { scramMaxIterations } : {}),
        }).then(
          async (c) => {
            await c.close();
            return null;
          },
          (e: unknown) => e,
        );
        const ms = performance.now() - t0;
        await server.allClosed(1000);
        return { error, ms, connections: server.connections };
      } finally {
        await server.close();
      }
    };

    it('a count above the configured cap fails at once, before any key is derived', async () => {
      const o = await viaConnect(5000, 4096);
      expect(o.error).toBeInstanceOf(AuthError);
      expect((o.error as Error).message).toMatch(/iteration count 5000 exceeds the limit of 4096/);
      expect(o.ms).toBeLessThan(2000);
    });

    it('the default cap (1,000,000) lets 5,000 through: the client derives keys and answers', async () => {
      // The fake server stalls after the client-final-message, so connect_timeout ends it; the
      // point is that the count was accepted and the exchange went on.
      const o = await viaConnect(5000);
      expect(o.error).toBeInstanceOf(ConnectionError);
      expect((o.error as Error).message).toMatch(/timeout expired/);
    }, 15_000);

    it('an invalid cap is an OptionError before any connection is opened', async () => {
      for (const cap of [0, -1, 1.5, 2 ** 32]) {
        const o = await viaConnect(4096, cap);
        expect(o.error).toBeInstanceOf(OptionError);
        expect(o.connections).toBe(0);
      }
    });
  });

  it.each([
    [
      'cleartext',
      { type: 'AuthenticationCleartextPassword' as const },
      /server requested a cleartext password/,
    ],
    [
      'MD5',
      { type: 'AuthenticationMD5Password' as const, salt: Uint8Array.of(1, 2, 3, 4) },
      /server requested a hashed password/,
    ],
  ])(
    'require_auth=scram-sha-256 and a server asking for a %s password: fails closed, nothing sent',
    async (_, request, message) => {
      const o = await run(
        async (peer) => {
          await peer.readStartupPacket();
          await peer.send(request);
          await peer.stall();
        },
        config({ sslmode: 'disable', requireAuth: parseRequireAuth('scram-sha-256') }),
      );
      expect(o.error).toBeInstanceOf(AuthError);
      expect(messageOf(o)).toMatch(message);
      // No PasswordMessage ('p'), hashed or not, after the StartupMessage.
      const sent = o.received[0]!;
      expect(sentStartup(sent)).toBe(true);
      const after = sent.subarray(new DataView(sent.buffer, sent.byteOffset).getInt32(0));
      expect(after[0]).not.toBe(0x70);
      expect(includesBytes(sent, PASSWORD)).toBe(false);
    },
  );

  it('SCRAM: a wrong server signature fails, and AuthenticationOk is never waited for', async () => {
    const wrong = `v=${btoa(String.fromCharCode(...new Uint8Array(32).fill(7)))}`;
    const o = await run(
      scram((nonce) => `r=${nonce}srv,s=${salt},i=4096`, wrong),
      plain,
    );
    expect(o.error).toBeInstanceOf(AuthError);
    expect(messageOf(o)).toContain('incorrect server signature');
    // SCRAM never puts the password on the wire; the client-final proof is all it sent.
    expect(includesBytes(o.received[0]!, PASSWORD)).toBe(false);
  });

  /** Over TLS: 'S', the handshake, then `then` after the StartupMessage. */
  const overTls = (then: (peer: FakePeer) => Promise<void>) => async (peer: FakePeer) => {
    await peer.readStartupPacket();
    await peer.write('S');
    await peer.startTls();
    await peer.readStartupPacket();
    await then(peer);
  };
  const bound = () => config({ sslmode: 'require', channelBinding: 'require' });

  it('channel_binding=require and SCRAM-SHA-256-PLUS stripped from the list over TLS: fails closed', async () => {
    const o = await run(
      overTls(async (peer) => {
        await peer.send({ type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256'] });
        await peer.stall();
      }),
      bound(),
      { server: tlsOpts },
    );
    expect(o.error).toBeInstanceOf(AuthError);
    expect(messageOf(o)).toMatch(/channel binding/);
  });

  it('channel_binding=require and AuthenticationOk in the middle of the SASL exchange: fails closed', async () => {
    const o = await run(
      overTls(async (peer) => {
        await peer.send({ type: 'AuthenticationSASL', mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] });
        await peer.readMessage(); // SASLInitialResponse
        await peer.send({ type: 'AuthenticationOk' }, { type: 'ReadyForQuery', status: 'I' });
        await peer.stall();
      }),
      bound(),
      { server: tlsOpts },
    );
    expect(o.error).toBeInstanceOf(AuthError);
    expect(o.error?.message).not.toContain(PASSWORD);
  });
});
