/**
 * The scripted fake server itself, driven by plain node:net / node:tls clients: reads and writes,
 * recording, server-side TLS with and without ALPN, stall/end/destroy, and close() leaving nothing open.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backend,
  type CertSet,
  createCertSet,
  FakePeerClosedError,
  type FakeServer,
  includesBytes,
  isSslRequest,
  SSL_REQUEST_BYTES,
  startFakeServer,
  v2Error,
} from '../src/index.ts';

let certs: CertSet;

beforeAll(async () => {
  certs = await createCertSet();
}, 30_000);

afterAll(async () => {
  await certs?.remove();
});

/** A raw client that collects what it receives and resolves `ended` on close. */
function rawClient(port: number) {
  const sock = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  sock.on('data', (c) => chunks.push(c));
  sock.on('error', () => {});
  const ended = new Promise<void>((resolve) => sock.once('close', () => resolve()));
  const connected = new Promise<void>((resolve) => sock.once('connect', () => resolve()));
  return { sock, ended, connected, data: () => Buffer.concat(chunks) };
}

const startupPacket = (user: string): Uint8Array => {
  const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from(`user\0${user}\0\0`, 'latin1')]);
  const head = Buffer.alloc(4);
  head.writeInt32BE(body.length + 4);
  return Buffer.concat([head, body]);
};

describe('startFakeServer', () => {
  it('reads packets split across writes, answers with encoded messages, records what it received', async () => {
    const seen: string[] = [];
    const server = await startFakeServer(async (peer) => {
      const ssl = await peer.readStartupPacket();
      seen.push(isSslRequest(ssl) ? 'SSLRequest' : 'other');
      await peer.write('N');
      const startup = await peer.readStartupPacket();
      seen.push(`startup ${startup.length}`);
      await peer.send({ type: 'AuthenticationOk' }, { type: 'ReadyForQuery', status: 'I' });
      const m = await peer.readMessage();
      seen.push(`message ${String.fromCharCode(m.type)} ${m.bytes.length}`);
      await peer.end();
    });
    try {
      const c = rawClient(server.port);
      await c.connected;
      // The SSLRequest in two pieces: the reader must reassemble it.
      c.sock.write(SSL_REQUEST_BYTES.subarray(0, 3));
      await new Promise((r) => setTimeout(r, 20));
      c.sock.write(SSL_REQUEST_BYTES.subarray(3));
      await new Promise((r) => setTimeout(r, 20));
      const startup = startupPacket('alice');
      c.sock.write(startup);
      c.sock.write(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
      await c.ended;
      expect(seen).toEqual(['SSLRequest', `startup ${startup.length}`, 'message X 5']);
      expect(c.data()).toEqual(
        Buffer.concat([
          Buffer.from('N'),
          backend({ type: 'AuthenticationOk' }, { type: 'ReadyForQuery', status: 'I' }),
        ]),
      );
      expect(server.connections).toBe(1);
      expect(server.received[0]!.length).toBe(8 + startup.length + 5);
      expect(includesBytes(server.received[0]!, 'alice')).toBe(true);
      expect(server.errors).toEqual([]);
      await server.allClosed(1000);
      expect(server.peers[0]!.clientClosed).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('encodes a v2 error and rejects a read when the client goes away', async () => {
    expect(Buffer.from(v2Error('FATAL: x')).toString('latin1')).toBe('EFATAL: x\n\0');
    const server = await startFakeServer(async (peer) => {
      await peer.read(100);
    });
    try {
      const c = rawClient(server.port);
      await c.connected;
      c.sock.end(Buffer.from('short'));
      await c.ended;
      await server.allClosed(1000);
      await server.close();
      expect(server.errors).toHaveLength(1);
      expect(server.errors[0]).toBeInstanceOf(FakePeerClosedError);
      expect(server.received[0]).toEqual(new Uint8Array(Buffer.from('short')));
    } finally {
      await server.close();
    }
  });

  async function tlsRoundTrip(
    server: FakeServer,
    alpn: string[],
  ): Promise<{ alpn: string | false; data: string }> {
    const c = rawClient(server.port);
    await c.connected;
    c.sock.write(SSL_REQUEST_BYTES);
    await new Promise<void>((resolve) => c.sock.once('data', () => resolve()));
    c.sock.removeAllListeners('data');
    const secure = tls.connect({ socket: c.sock, ALPNProtocols: alpn, rejectUnauthorized: false });
    secure.on('error', () => {});
    await new Promise<void>((resolve) => secure.once('secureConnect', () => resolve()));
    const selected = secure.alpnProtocol;
    const data: Buffer[] = [];
    secure.on('data', (d) => data.push(d));
    secure.write(startupPacket('bob'));
    await new Promise<void>((resolve) => secure.once('close', () => resolve()));
    return { alpn: selected ?? false, data: Buffer.concat(data).toString('latin1') };
  }

  it('upgrades to TLS as the server, selecting ALPN "postgresql", and records decrypted bytes', async () => {
    const server = await startFakeServer(
      async (peer) => {
        await peer.readStartupPacket();
        await peer.write('S');
        await peer.startTls();
        const p = await peer.readStartupPacket();
        await peer.write(`ok ${p.length} ${peer.encrypted} ${peer.alpnProtocol}`);
        await peer.end();
      },
      { tls: { cert: certs.server.localhost.certPem, key: certs.server.localhost.keyPem } },
    );
    try {
      const r = await tlsRoundTrip(server, ['postgresql']);
      expect(r).toEqual({ alpn: 'postgresql', data: 'ok 18 true postgresql' });
      expect(includesBytes(server.received[0]!, 'bob')).toBe(true);
      expect(server.errors).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('can leave ALPN unselected', async () => {
    const server = await startFakeServer(
      async (peer) => {
        await peer.readStartupPacket();
        await peer.write('S');
        await peer.startTls();
        await peer.readStartupPacket();
        await peer.write(`alpn=${peer.alpnProtocol}`);
        peer.destroy();
      },
      {
        tls: { cert: certs.server.localhost.certPem, key: certs.server.localhost.keyPem, alpnProtocols: [] },
      },
    );
    try {
      const r = await tlsRoundTrip(server, ['postgresql']);
      expect(r).toEqual({ alpn: false, data: 'alpn=null' });
    } finally {
      await server.close();
    }
  });

  it('close() destroys stalled connections and ends stalled scripts', async () => {
    let stalled = 0;
    const server = await startFakeServer(async (peer) => {
      await peer.stall();
      stalled++;
    });
    const clients = [rawClient(server.port), rawClient(server.port)];
    await Promise.all(clients.map((c) => c.connected));
    while (server.connections < 2) await new Promise((r) => setTimeout(r, 5));
    const t0 = performance.now();
    await server.close();
    await Promise.all(clients.map((c) => c.ended));
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(stalled).toBe(2);
    expect(server.peers.every((p) => p.isClosed)).toBe(true);
    await expect(server.allClosed(10)).resolves.toBeUndefined();
  });

  it('allClosed() reports a connection the client left open', async () => {
    const server = await startFakeServer((peer) => peer.stall());
    const c = rawClient(server.port);
    try {
      await c.connected;
      while (server.connections < 1) await new Promise((r) => setTimeout(r, 5));
      await expect(server.allClosed(100)).rejects.toThrow(/connection\(s\) 0 still open/);
    } finally {
      await server.close();
      await c.ended;
    }
  });
});
