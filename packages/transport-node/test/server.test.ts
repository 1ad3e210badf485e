/**
 * Our server side over Node (listener, server-side STARTTLS and direct TLS, acceptSession) against
 * our own client: every sslmode × server TLS setting, SCRAM and SCRAM-PLUS, pipelined bytes kept.
 */
import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';
import {
  type AuthPlan,
  acceptSession,
  connect as coreConnect,
  type Listener,
  resolveOptions,
  type ScramVerifier,
  type ServerConnection,
  scramVerifier,
} from '@pgconn/core';
import { type CertSet, createCertSet } from '@pgconn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeTransport } from '../src/index.ts';

let certs: CertSet;
let verifier: ScramVerifier;
const listeners: Listener[] = [];
const sessions: ServerConnection[] = [];

/** Answers every Query with one row holding the session's user, until Terminate. */
async function serveQueries(conn: ServerConnection): Promise<void> {
  sessions.push(conn);
  for (let m = await conn.next(); m !== null && m.type !== 'Terminate'; m = await conn.next()) {
    if (m.type !== 'Query') continue;
    conn.queue(
      {
        type: 'RowDescription',
        fields: [
          { name: 'who', tableOid: 0, columnAttr: 0, typeOid: 25, typeSize: -1, typeModifier: -1, format: 0 },
        ],
      },
      {
        type: 'DataRow',
        fields: [new TextEncoder().encode(`${conn.session.user}/${conn.session.authMethod}`)],
      },
      { type: 'CommandComplete', tag: 'SELECT 1' },
      { type: 'ReadyForQuery', status: 'I' },
    );
    await conn.flush();
  }
  await conn.close();
}

async function startServer(
  tls: 'off' | 'on',
  opts: { direct?: boolean; requireTls?: boolean } = {},
): Promise<number> {
  const listener = await nodeTransport.listen({ host: '127.0.0.1', port: 0 });
  listeners.push(listener);
  const leaf = certs.server.localhost;
  const der = Uint8Array.from(
    Buffer.from(leaf.certPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64'),
  );
  const auth = (): AuthPlan => ({ method: 'scram-sha-256', verifier });
  void (async () => {
    for (let s = await listener.accept(); s !== null; s = await listener.accept()) {
      void acceptSession(
        s,
        {
          auth,
          tls: tls === 'on' ? { certificate: der } : null,
          directTls: opts.direct ?? false,
          requireTls: opts.requireTls ?? false,
        },
        { tls: tls === 'on' ? { cert: leaf.certPem, key: leaf.keyPem } : null, authenticationTimeout: 5 },
      ).then((conn) => (conn ? serveQueries(conn) : undefined));
    }
  })();
  return listener.port;
}

beforeAll(async () => {
  certs = await createCertSet();
  verifier = await scramVerifier('sekret');
}, 30_000);

afterAll(async () => {
  for (const s of sessions) s.destroy();
  await Promise.all(listeners.map((l) => l.close()));
  await certs?.remove();
});

async function query(port: number, extra: string): Promise<{ who: string; ssl: boolean; direct: boolean }> {
  const resolved = resolveOptions({
    conninfo: `host=localhost hostaddr=127.0.0.1 port=${port} user=alice password=sekret sslrootcert=${certs.bundles.rootServerCa} ${extra}`,
    env: {},
  });
  const conn = await coreConnect(nodeTransport, resolved);
  try {
    const r = await conn.query('select who');
    return { who: r.rows[0]?.[0] ?? '', ssl: conn.tls !== null, direct: conn.handshake.direct };
  } finally {
    await conn.close();
  }
}

describe('pgconn server side over Node, with our client', () => {
  let plain: number;
  let tls: number;
  let direct: number;
  let required: number;
  beforeAll(async () => {
    [plain, tls, direct, required] = await Promise.all([
      startServer('off'),
      startServer('on'),
      startServer('on', { direct: true }),
      startServer('on', { requireTls: true }),
    ]);
  });

  it.each([
    ['server TLS off', () => plain, 'disable', { ssl: false, who: 'alice/SCRAM-SHA-256' }],
    ['server TLS off', () => plain, 'prefer', { ssl: false, who: 'alice/SCRAM-SHA-256' }],
    ['server TLS off', () => plain, 'require', 'server does not support SSL, but SSL was required'],
    ['server TLS on', () => tls, 'disable', { ssl: false, who: 'alice/SCRAM-SHA-256' }],
    ['server TLS on', () => tls, 'allow', { ssl: false, who: 'alice/SCRAM-SHA-256' }],
    ['server TLS on', () => tls, 'prefer', { ssl: true, who: 'alice/SCRAM-SHA-256-PLUS' }],
    ['server TLS on', () => tls, 'require', { ssl: true, who: 'alice/SCRAM-SHA-256-PLUS' }],
    ['server TLS on', () => tls, 'verify-full', { ssl: true, who: 'alice/SCRAM-SHA-256-PLUS' }],
    ['server TLS required', () => required, 'disable', 'no pg_hba.conf entry'],
    ['server TLS required', () => required, 'allow', { ssl: true, who: 'alice/SCRAM-SHA-256-PLUS' }],
    ['server TLS required', () => required, 'prefer', { ssl: true, who: 'alice/SCRAM-SHA-256-PLUS' }],
  ] as const)('%s, sslmode=%s', async (_name, port, sslmode, expected) => {
    const got = query(port(), `sslmode=${sslmode}`);
    if (typeof expected === 'string') await expect(got).rejects.toThrow(expected);
    else await expect(got).resolves.toMatchObject(expected);
  });

  it('direct TLS (ALPN postgresql) when enabled; refused when not', async () => {
    await expect(query(direct, 'sslmode=verify-full sslnegotiation=direct')).resolves.toMatchObject({
      ssl: true,
      direct: true,
      who: 'alice/SCRAM-SHA-256-PLUS',
    });
    await expect(query(tls, 'sslmode=require sslnegotiation=direct')).rejects.toThrow(/SSL/);
  });

  it('channel_binding=require succeeds over TLS; a wrong password fails with 28P01', async () => {
    await expect(query(tls, 'sslmode=require channel_binding=require')).resolves.toMatchObject({ ssl: true });
    const resolved = resolveOptions({
      conninfo: `host=127.0.0.1 port=${tls} user=alice password=wrong sslmode=require`,
      env: {},
    });
    await expect(coreConnect(nodeTransport, resolved)).rejects.toMatchObject({
      fields: { code: '28P01', message: 'password authentication failed for user "alice"' },
    });
  });
});

describe('server-side TLS: what startServerTls reports about the client certificate', () => {
  /** One TLS handshake straight to startServerTls (ca: the client CA, certificate requested). */
  async function serverSees(client: { cert?: string; key?: string }) {
    const listener = await nodeTransport.listen({ host: '127.0.0.1', port: 0 });
    listeners.push(listener);
    const leaf = certs.server.localhost;
    const accepted = listener.accept().then((s) =>
      s!.startServerTls({
        cert: leaf.certPem,
        key: leaf.keyPem,
        ca: [readFileSync(certs.bundles.rootClientCa, 'utf8')],
        requestCert: true,
        alpnProtocols: [],
      }),
    );
    const socket = tls.connect({
      host: '127.0.0.1',
      port: listener.port,
      rejectUnauthorized: false,
      ...(client.cert ? { cert: client.cert, key: client.key } : {}),
    });
    socket.on('error', () => {});
    try {
      return await accepted;
    } finally {
      socket.destroy();
    }
  }

  it('no certificate: not authorized, and no verdict to report', async () => {
    const info = await serverSees({});
    expect(info.authorized).toBe(false);
    expect(info.peerCertificate).toBeUndefined();
    expect(info.authorizationError).toBeUndefined();
  });

  it('a certificate from the trusted CA is authorized; one from another CA is not, with OpenSSL’s reason', async () => {
    const good = certs.client.client;
    const trusted = await serverSees({ cert: good.certPem, key: good.keyPem });
    expect(trusted.authorized).toBe(true);
    expect(trusted.peerCertificate?.length).toBeGreaterThan(0);
    const wrong = certs.client.wrongCa;
    const untrusted = await serverSees({ cert: wrong.certPem, key: wrong.keyPem });
    expect(untrusted.authorized).toBe(false);
    expect(untrusted.peerCertificate?.length).toBeGreaterThan(0);
    expect(untrusted.authorizationError).toMatch(/^[A-Z_]+$/);
  });
});
