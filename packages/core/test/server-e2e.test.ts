/**
 * Both state machines wired together in memory: core's ClientHandshake (libpq's PQconnectPoll)
 * talking to ServerHandshake (backend startup). Bytes are passed back and forth unchanged; a TLS
 * step is simulated by handing both sides a TlsInfo with the same server certificate, so SCRAM-PLUS
 * binds to real tls-server-end-point data. Every auth method × sslmode must reach done + ready.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { md5Verifier } from '../src/auth/md5.ts';
import { type ScramVerifier, scramVerifier } from '../src/auth/scram.ts';
import {
  type ClientAction,
  type ClientEvent,
  ClientHandshake,
  type HandshakeConfig,
  type HandshakeResult,
} from '../src/client/handshake.ts';
import type { SslMode } from '../src/client/sslmode.ts';
import { PROTOCOL_3_0, PROTOCOL_3_2, PROTOCOL_GREASE } from '../src/codec/constants.ts';
import { ServerError } from '../src/errors.ts';
import type { AuthPlan } from '../src/server/auth.ts';
import {
  type ServerAction,
  type ServerEvent,
  ServerHandshake,
  type ServerHandshakeConfig,
  type ServerSession,
} from '../src/server/handshake.ts';

let dir = '';
let serverCert: Uint8Array;
let aliceCert: Uint8Array;
let verifier: ScramVerifier;

function makeCert(name: string, cn: string): Uint8Array {
  const der = join(dir, `${name}.der`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-keyout',
      join(dir, `${name}.key`),
      '-subj',
      `/CN=${cn}`,
      '-outform',
      'DER',
      '-out',
      der,
    ],
    { stdio: 'ignore' },
  );
  return new Uint8Array(readFileSync(der));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pgconn-server-e2e-'));
  serverCert = makeCert('server', 'localhost');
  aliceCert = makeCert('alice', 'alice');
  verifier = await scramVerifier('secret', { iterations: 64 });
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Outcome {
  result: HandshakeResult | null;
  error: Error | null;
  sessions: ServerSession[];
  serverCloses: Extract<ServerAction, { type: 'close' }>[];
  cancels: Extract<ServerAction, { type: 'cancel' }>[];
}

interface WireOptions {
  /** What the simulated TLS layer reports to the server about the client's certificate. */
  clientCert?: Uint8Array;
  clientAuthorized?: boolean;
}

/** A fake ClientHello: only its first byte (0x16) matters to the server state machine. */
const CLIENT_HELLO = Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0x01, 0x01);

/** Runs both machines until the client is done or failed (or nothing moves any more). */
async function wire(
  client: HandshakeConfig,
  server: ServerHandshakeConfig,
  opts: WireOptions = {},
): Promise<Outcome> {
  const out: Outcome = { result: null, error: null, sessions: [], serverCloses: [], cancels: [] };
  const hs = new ClientHandshake(client);
  let srv: ServerHandshake | null = null;
  // Read through a function: the closures below reassign `srv`, which TypeScript's narrowing misses.
  const current = (): ServerHandshake | null => srv;
  let toServer: ServerEvent[] = [];
  const toClient: ClientEvent[] = [];
  let clientTls = false;
  let serverTls = false;
  let serverDirect = false;

  const runServer = (actions: ServerAction[]): void => {
    for (const a of actions) {
      switch (a.type) {
        case 'write':
          toClient.push({ type: 'data', bytes: a.bytes.slice() });
          break;
        case 'startTls':
          // The TLS layer must get exactly the ClientHello read so far, nothing read in plaintext.
          expect([...a.replay]).toEqual(a.direct ? [...CLIENT_HELLO] : []);
          serverTls = true;
          serverDirect = a.direct;
          break;
        case 'ready':
          out.sessions.push(a.session);
          break;
        case 'cancel':
          out.cancels.push(a);
          break;
        case 'close':
          out.serverCloses.push(a);
          toClient.push({ type: 'closed' });
          srv = null;
          break;
      }
    }
  };

  const runClient = async (actions: ClientAction[]): Promise<void> => {
    for (const a of actions) {
      switch (a.type) {
        case 'connect':
          srv = new ServerHandshake(server, { remoteHost: '127.0.0.1' });
          toServer = [];
          if (a.tls) {
            expect(a.tls.alpnProtocols).toEqual(['postgresql']);
            clientTls = true;
            toServer.push({ type: 'data', bytes: CLIENT_HELLO });
          } else {
            toClient.push({ type: 'connected' });
          }
          break;
        case 'write':
          toServer.push({ type: 'data', bytes: a.bytes.slice() });
          break;
        case 'startTls':
          clientTls = true;
          break;
        case 'close':
          if (srv) runServer(await srv.handle({ type: 'closed' }));
          srv = null;
          toClient.length = 0;
          break;
        case 'done':
          out.result = a.result;
          break;
        case 'fail':
          out.error = a.error;
          break;
      }
    }
  };

  await runClient(hs.start());
  for (let guard = 0; guard < 500 && !out.result && !out.error; guard++) {
    if (clientTls && serverTls) {
      clientTls = serverTls = false;
      // Both ends of one simulated TLS session: ALPN selected, the server's certificate to the
      // client, the client's (if any) to the server.
      runServer(
        await current()!.handle({
          type: 'tlsEstablished',
          info: {
            authorized: opts.clientAuthorized ?? false,
            alpnProtocol: 'postgresql',
            protocol: 'TLSv1.3',
            cipher: 'TLS_AES_128_GCM_SHA256',
            ...(opts.clientCert ? { peerCertificate: opts.clientCert } : {}),
          },
        }),
      );
      await runClient(
        await hs.handle({
          type: 'tlsEstablished',
          info: {
            authorized: false,
            alpnProtocol: 'postgresql',
            protocol: 'TLSv1.3',
            peerCertificate: serverCert,
          },
        }),
      );
      expect(serverDirect).toBe(client.sslnegotiation === 'direct');
      continue;
    }
    const s = toServer.shift();
    const live = current();
    if (s && live) {
      runServer(await live.handle(s));
      continue;
    }
    const c = toClient.shift();
    if (c) {
      await runClient(await hs.handle(c));
      continue;
    }
    break;
  }
  return out;
}

const PASSWORD = 'secret';

const PLANS: Record<string, () => AuthPlan> = {
  trust: () => ({ method: 'trust' }),
  password: () => ({ method: 'password', verify: (p) => p === PASSWORD }),
  md5: () => ({ method: 'md5', storedVerifier: md5Verifier('alice', PASSWORD) }),
  'scram-sha-256': () => ({ method: 'scram-sha-256', verifier }),
  cert: () => ({ method: 'cert' }),
};

const MODES: Array<{ name: string; sslmode: SslMode; direct?: boolean }> = [
  { name: 'disable', sslmode: 'disable' },
  { name: 'prefer', sslmode: 'prefer' },
  { name: 'require', sslmode: 'require' },
  { name: 'require, direct', sslmode: 'require', direct: true },
];

const serverConfig = (
  plan: () => AuthPlan,
  extra: Partial<ServerHandshakeConfig> = {},
): ServerHandshakeConfig => ({
  auth: plan,
  tls: { certificate: serverCert },
  directTls: true,
  scramIterations: 64,
  ...extra,
});

const clientConfig = (extra: Partial<HandshakeConfig> = {}): HandshakeConfig => ({
  host: 'localhost',
  user: 'alice',
  database: 'db',
  password: PASSWORD,
  ...extra,
});

describe('ClientHandshake ↔ ServerHandshake: every auth method × sslmode', () => {
  for (const [method, plan] of Object.entries(PLANS)) {
    for (const mode of MODES) {
      const tls = mode.sslmode !== 'disable';
      const works = method !== 'cert' || tls;
      it(`${method}, sslmode=${mode.name}: ${works ? 'both reach done/ready' : 'refused'}`, async () => {
        const o = await wire(
          clientConfig({ sslmode: mode.sslmode, ...(mode.direct ? { sslnegotiation: 'direct' } : {}) }),
          serverConfig(plan),
          { clientCert: aliceCert, clientAuthorized: true },
        );
        if (!works) {
          expect(o.error).toBeInstanceOf(ServerError);
          expect((o.error as ServerError).code).toBe('28000');
          expect(o.sessions).toEqual([]);
          return;
        }
        expect(o.error).toBeNull();
        const r = o.result!;
        const s = o.sessions[0]!;
        expect(o.sessions).toHaveLength(1);
        expect(r.encryption).toBe(tls ? 'ssl' : 'plaintext');
        expect(r.direct).toBe(!!mode.direct);
        expect(s.direct).toBe(!!mode.direct);
        expect(s.tls !== null).toBe(tls);
        expect(r.connections).toBe(1);
        expect(s).toMatchObject({ user: 'alice', database: 'db', protocolVersion: PROTOCOL_3_0 });
        const expected =
          method === 'scram-sha-256'
            ? tls
              ? 'SCRAM-SHA-256-PLUS'
              : 'SCRAM-SHA-256'
            : method === 'md5'
              ? 'md5'
              : method;
        expect(s.authMethod).toBe(expected);
        // The client's view of the same exchange (it cannot tell trust from cert).
        expect(r.authMethod).toBe(method === 'cert' ? 'trust' : expected);
        expect(r.backendKey).toEqual(s.backendKey);
        expect(r.backendKey?.secretKey.length).toBe(4);
        expect(r.parameters).toEqual(s.serverParameters);
        expect(r.transactionStatus).toBe('I');
        expect(r.leftover.length).toBe(0);
        expect(s.leftover.length).toBe(0);
      });
    }
  }
});

describe('ClientHandshake ↔ ServerHandshake: negotiation corners', () => {
  it('protocol 3.2: a 32-byte key both sides agree on', async () => {
    const o = await wire(
      clientConfig({ sslmode: 'disable', maxProtocolVersion: PROTOCOL_3_2 }),
      serverConfig(PLANS.trust!),
    );
    expect(o.result?.protocolVersion).toBe(PROTOCOL_3_2);
    expect(o.result?.backendKey?.secretKey.length).toBe(32);
    expect(o.result?.backendKey).toEqual(o.sessions[0]?.backendKey);
  });

  it('grease 3.9999: negotiated down to 3.2', async () => {
    const o = await wire(
      clientConfig({ sslmode: 'prefer', maxProtocolVersion: PROTOCOL_GREASE }),
      serverConfig(PLANS['scram-sha-256']!),
    );
    expect(o.error).toBeNull();
    expect(o.result?.protocolVersion).toBe(PROTOCOL_3_2);
    expect(o.sessions[0]).toMatchObject({
      protocolVersion: PROTOCOL_3_2,
      requestedProtocolVersion: PROTOCOL_GREASE,
    });
  });

  it('server without TLS: prefer continues in plaintext after N; require fails', async () => {
    const prefer = await wire(
      clientConfig({ sslmode: 'prefer' }),
      serverConfig(PLANS.password!, { tls: null }),
    );
    expect(prefer.result?.encryption).toBe('plaintext');
    const require = await wire(
      clientConfig({ sslmode: 'require' }),
      serverConfig(PLANS.password!, { tls: null }),
    );
    expect(require.error?.message).toBe('server does not support SSL, but SSL was required');
    expect(require.sessions).toEqual([]);
  });

  it('requireTls (hostssl only) + sslmode=allow: plaintext refused, reconnect with TLS succeeds', async () => {
    const o = await wire(
      clientConfig({ sslmode: 'allow' }),
      serverConfig(PLANS.password!, { requireTls: true }),
    );
    expect(o.error).toBeNull();
    expect(o.result).toMatchObject({ encryption: 'ssl', connections: 2 });
    expect(o.serverCloses.map((c) => c.reason)).toEqual(['rejected']);
  });

  it('direct TLS refused by a server without it: the client sees EOF and fails', async () => {
    const o = await wire(
      clientConfig({ sslmode: 'require', sslnegotiation: 'direct' }),
      serverConfig(PLANS.trust!, { directTls: false }),
    );
    expect(o.error).not.toBeNull();
    expect(o.serverCloses.map((c) => c.reason)).toEqual(['direct-tls-rejected']);
  });

  it('wrong password: ServerError 28P01 on the client, auth-failed on the server', async () => {
    for (const plan of ['password', 'md5', 'scram-sha-256']) {
      const o = await wire(
        clientConfig({ sslmode: 'disable', password: 'wrong' }),
        serverConfig(PLANS[plan]!),
      );
      expect(o.error).toBeInstanceOf(ServerError);
      expect((o.error as ServerError).code).toBe('28P01');
      expect(o.error?.message).toBe('FATAL:  password authentication failed for user "alice"');
      expect(o.serverCloses.map((c) => c.reason)).toEqual(['auth-failed']);
    }
  });

  it('unknown role under SCRAM fails exactly like a wrong password', async () => {
    const o = await wire(
      clientConfig({ sslmode: 'require' }),
      serverConfig(() => ({ method: 'scram-sha-256', verifier: null })),
    );
    expect(o.error?.message).toBe('FATAL:  password authentication failed for user "alice"');
  });

  it('channel_binding=require against a server that cannot bind (certificate unknown): the client refuses', async () => {
    const o = await wire(
      clientConfig({ sslmode: 'require', channelBinding: 'require' }),
      serverConfig(PLANS['scram-sha-256']!, { tls: {} }),
    );
    expect(o.error?.message).toContain('channel binding');
    expect(o.sessions).toEqual([]);
  });

  it('channel_binding=disable over TLS: plain SCRAM with gs2 flag n', async () => {
    const o = await wire(
      clientConfig({ sslmode: 'require', channelBinding: 'disable' }),
      serverConfig(PLANS['scram-sha-256']!),
    );
    expect(o.sessions[0]?.authMethod).toBe('SCRAM-SHA-256');
  });

  it('cert with an unverified client certificate is refused', async () => {
    const o = await wire(clientConfig({ sslmode: 'require' }), serverConfig(PLANS.cert!), {
      clientCert: aliceCert,
      clientAuthorized: false,
    });
    expect((o.error as ServerError).fields.message).toBe('connection requires a valid client certificate');
  });

  it('a cancel connection: the key reaches the application, nothing is answered', async () => {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const o = await wire(
      clientConfig({ sslmode: 'disable', cancel: { processId: 99, secretKey: key } }),
      serverConfig(PLANS.trust!),
    );
    expect(o.error).toBeNull();
    expect(o.cancels).toEqual([{ type: 'cancel', processId: 99, secretKey: key }]);
    expect(o.serverCloses.map((c) => c.reason)).toEqual(['cancel-request']);
  });
});
