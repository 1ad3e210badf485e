/// <reference path="../src/bun.d.ts" />
/**
 * Bun-only checks of the transport's mechanics, run by `bun test/bun-selftest.ts` (spawned from
 * bun-transport.test.ts, which passes certificate paths in PGCONN_BUN_SELFTEST): partial writes and
 * drain, read backpressure, chunk freshness, both native upgradeTLS roles, the node:tls direct-TLS
 * server path, the plaintext-before-TLS guards, close/destroy, and the small helpers. Prints one
 * `ok`/`not ok` line per check; exits 1 on any failure.
 */
import assert from 'node:assert/strict';
import process from 'node:process';
import type {
  ServerTransportSocket,
  TlsClientOptions,
  TlsServerOptions,
  TransportSocket,
} from '@pgconn/core';
import { alpnWire, bunTransport } from '../src/index.ts';

interface SelftestEnv {
  rootServerCa: string;
  rootClientCa: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  encryptedKey: string;
}

const env = JSON.parse(process.env.PGCONN_BUN_SELFTEST ?? 'null') as SelftestEnv;
if (!env) throw new Error('PGCONN_BUN_SELFTEST is not set');

const text = async (path: string) => new TextDecoder().decode((await bunTransport.readFile(path))!);
const pemDer = (pem: string) =>
  Uint8Array.from(atob(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '')), (c) => c.charCodeAt(0));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const [rootServerCa, rootClientCa, serverCert, serverKey, clientCert, clientKey] = (await Promise.all(
  [env.rootServerCa, env.rootClientCa, env.serverCert, env.serverKey, env.clientCert, env.clientKey].map(
    text,
  ),
)) as [string, string, string, string, string, string];

const clientTls = (over: Partial<TlsClientOptions> = {}): TlsClientOptions => ({
  servername: 'localhost',
  alpnProtocols: ['postgresql'],
  ca: [rootServerCa],
  cert: clientCert,
  key: clientKey,
  ...over,
});
const serverTls: TlsServerOptions = {
  cert: serverCert,
  key: serverKey,
  alpnProtocols: ['postgresql'],
  ca: [rootClientCa],
  requestCert: true,
};

async function pair() {
  const listener = await bunTransport.listen({ host: '127.0.0.1', port: 0 });
  const [client, server] = await Promise.all([
    bunTransport.connect({ host: '127.0.0.1', port: listener.port }),
    listener.accept(),
  ]);
  assert(server);
  return { client, server: server as ServerTransportSocket, listener };
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >>> 13)) & 0xff;
  return b;
}

/**
 * Sends `n` bytes in ONE write while the other side reads (slowly at first, so the writer hits
 * partial writes and the reader pauses the socket), keeps every chunk it read without copying, and
 * compares them at the end: a runtime that rewrote a chunk's buffer would show up here.
 */
async function transfer(
  from: TransportSocket,
  to: TransportSocket,
  n: number,
  seed: number,
): Promise<number> {
  const data = pattern(n, seed);
  const writing = from.write(data);
  const chunks: Uint8Array[] = [];
  let got = 0;
  while (got < n) {
    const c = await to.read();
    assert(c, `end of stream after ${got} of ${n} bytes`);
    chunks.push(c);
    got += c.length;
    if (chunks.length < 20) await sleep(5);
  }
  await writing;
  assert.equal(got, n);
  let at = 0;
  for (const c of chunks) {
    for (let i = 0; i < c.length; i++) {
      if (c[i] !== data[at + i]) assert.fail(`byte ${at + i} differs (chunk rewritten?)`);
    }
    at += c.length;
  }
  return chunks.length;
}

const checks: Array<[string, () => Promise<void>]> = [];
const check = (name: string, fn: () => Promise<void>) => checks.push([name, fn]);

check('ALPN is sent in wire format', async () => {
  assert.deepEqual(
    alpnWire(['postgresql']),
    Uint8Array.from([10, ...new TextEncoder().encode('postgresql')]),
  );
  assert.deepEqual(alpnWire(['a', 'bc']), Uint8Array.from([1, 97, 2, 98, 99]));
});

check('plain: 32 MB each way in one write (partial writes, drain, backpressure, fresh chunks)', async () => {
  const { client, server, listener } = await pair();
  await transfer(client, server, 32 << 20, 1);
  await transfer(server, client, 32 << 20, 2);
  await client.close();
  assert.equal(await server.read(), null);
  await server.close();
  await listener.close();
});

check('STARTTLS on both sides (native upgradeTLS): TlsInfo both ways, 16 MB each way', async () => {
  const { client, server, listener } = await pair();
  const [ci, si] = await Promise.all([client.startTls(clientTls()), server.startServerTls(serverTls)]);
  assert.equal(ci.authorized, true, ci.authorizationError);
  assert.equal(ci.alpnProtocol, 'postgresql');
  assert.equal(ci.protocol, 'TLSv1.3');
  assert.deepEqual(ci.peerCertificate, pemDer(serverCert));
  assert.equal(si.authorized, true, si.authorizationError);
  assert.equal(si.alpnProtocol, 'postgresql');
  assert.deepEqual(si.peerCertificate, pemDer(clientCert));
  await transfer(client, server, 16 << 20, 3);
  await transfer(server, client, 16 << 20, 4);
  // close(): close_notify, then FIN; the peer reads a clean end of stream.
  await client.close();
  assert.equal(await server.read(), null);
  await server.close();
  await listener.close();
});

check('verify-ca semantics: a chain that verifies but names another host is authorized', async () => {
  const { client, server, listener } = await pair();
  const [ci] = await Promise.all([
    client.startTls(clientTls({ servername: 'wronghost.test' })),
    server.startServerTls(serverTls),
  ]);
  assert.equal(ci.authorized, true, ci.authorizationError);
  client.destroy();
  server.destroy();
  await listener.close();
});

// Bun reports a name mismatch as ERR_TLS_CERT_ALTNAME_INVALID, which we read as "chain verified":
// that is only sound while a chain error always wins over the name check. Guard it, both names.
for (const servername of ['localhost', 'wronghost.test']) {
  check(`an unknown CA is reported, not thrown (servername ${servername})`, async () => {
    const { client, server, listener } = await pair();
    const [ci] = await Promise.all([
      client.startTls(clientTls({ ca: [rootClientCa], servername })),
      server.startServerTls(serverTls),
    ]);
    assert.equal(ci.authorized, false);
    assert.match(ci.authorizationError ?? '', /UNABLE_TO_VERIFY|SELF_SIGNED|UNABLE_TO_GET/);
    client.destroy();
    server.destroy();
    await listener.close();
  });
}

check(
  'direct TLS: client connectTls; server via node:tls with the ClientHello replayed; 8 MB each way',
  async () => {
    const listener = await bunTransport.listen({ host: '127.0.0.1', port: 0 });
    const serving = (async () => {
      const s = (await listener.accept())!;
      const first = await s.read();
      assert(first && first[0] === 0x16, 'expected a ClientHello');
      const info = await s.startServerTls(serverTls, first);
      assert.equal(info.alpnProtocol, 'postgresql');
      assert.deepEqual(info.peerCertificate, pemDer(clientCert));
      assert.equal(info.authorized, true);
      return s;
    })();
    const { socket: client, info } = await bunTransport.connectTls(
      { host: '127.0.0.1', port: listener.port },
      clientTls(),
    );
    const server = await serving;
    assert.equal(info.alpnProtocol, 'postgresql');
    assert.equal(info.authorized, true, info.authorizationError);
    await transfer(client, server, 8 << 20, 5);
    await transfer(server, client, 8 << 20, 6);
    await server.close();
    assert.equal(await client.read(), null);
    await client.close();
    await listener.close();
  },
);

/**
 * A TCP relay in front of `port` that records how the client's side ended: the TLS records it sent
 * (type and length; the checks below speak TLS from the first byte) and whether it ended with a FIN.
 * Once `seen.hold` is set, nothing more reaches the client from the server (a server slow to close
 * its end, or a long link).
 */
async function recordingRelay(port: number) {
  const net = await import('node:net');
  const seen = { records: [] as string[], fin: false, hold: false };
  const relay = net.createServer((c) => {
    const up = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      up.write(d);
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
        const length = buf.readUInt16BE(3);
        seen.records.push(`${buf[0]}/${length}`);
        buf = buf.subarray(5 + length);
      }
    });
    c.on('end', () => {
      seen.fin = true;
      up.end();
    });
    c.on('error', () => up.destroy());
    c.on('close', () => up.destroy());
    up.on('data', (d: Buffer) => seen.hold || c.write(d));
    up.on('end', () => seen.hold || c.end());
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  const address = relay.address() as import('node:net').AddressInfo;
  return { port: address.port, seen, close: () => relay.close() };
}

// libpq's PQfinish sends close_notify and closes its socket; it never waits for the server to close
// its end. Bun's native TLS end() reports the close only once the peer has closed too: a round trip
// per close() over a network, and the 2 s timer against a server that keeps its end open.
for (const how of ['STARTTLS', 'direct TLS'] as const) {
  check(`client close() over ${how}: close_notify and FIN, without waiting for the server`, async () => {
    const listener = await bunTransport.listen({ host: '127.0.0.1', port: 0 });
    const relay = await recordingRelay(listener.port);
    const serving = (async () => {
      const s = (await listener.accept())!;
      if (how === 'STARTTLS') await s.startServerTls(serverTls);
      else await s.startServerTls(serverTls, (await s.read())!);
      return s;
    })();
    const endpoint = { host: '127.0.0.1', port: relay.port };
    let client: TransportSocket;
    if (how === 'STARTTLS') {
      client = await bunTransport.connect(endpoint);
      await client.startTls(clientTls());
    } else client = (await bunTransport.connectTls(endpoint, clientTls())).socket;
    const server = await serving;
    await transfer(client, server, 64 << 10, 7);
    // From here the client hears nothing from the server: its close_notify answer and FIN are held.
    relay.seen.hold = true;
    const closed = await Promise.race([
      client.close().then(() => 'closed'),
      sleep(1000).then(() => 'waiting'),
    ]);
    assert.equal(closed, 'closed', 'close() waited for the server to close its end');
    assert.equal(await server.read(), null);
    await sleep(50);
    assert.equal(relay.seen.fin, true, 'the client ended with a FIN');
    // TLS 1.3: close_notify is an application_data record of 2 alert bytes + content type + 16-byte tag.
    assert.equal(relay.seen.records.at(-1), '23/19', `last records: ${relay.seen.records.slice(-3)}`);
    await server.close();
    relay.close();
    await listener.close();
  });
}

check('plaintext queued before startTls is refused (client and server)', async () => {
  const { client, server, listener } = await pair();
  await server.write(new TextEncoder().encode('injected'));
  await client.write(new TextEncoder().encode('pipelined'));
  await sleep(50);
  await assert.rejects(client.startTls(clientTls()), /received unencrypted data after SSL response/);
  await assert.rejects(server.startServerTls(serverTls), /received unencrypted data after SSL request/);
  client.destroy();
  server.destroy();
  await listener.close();
});

check('destroy(): the peer reads the end; writes after it fail', async () => {
  const { client, server, listener } = await pair();
  client.destroy();
  const end = await server.read().catch(() => null);
  assert.equal(end, null);
  await assert.rejects(client.write(new Uint8Array([1])));
  await server.close();
  await listener.close();
});

check('listener.close(): pending accept() resolves null', async () => {
  const listener = await bunTransport.listen({ host: '127.0.0.1', port: 0 });
  const waiting = listener.accept();
  await listener.close();
  assert.equal(await waiting, null);
});

check('connect errors: refused, aborted', async () => {
  await assert.rejects(
    bunTransport.connect({ host: '127.0.0.1', port: 1 }),
    (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ECONNREFUSED');
      return true;
    },
  );
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(bunTransport.connect({ host: '127.0.0.1', port: 1 }, { signal: ac.signal }), {
    name: 'AbortError',
  });
});

check('a key that cannot be decrypted: an error with the OpenSSL reason', async () => {
  const { client, server, listener } = await pair();
  const key = await text(env.encryptedKey);
  await assert.rejects(
    client.startTls(clientTls({ key, passphrase: 'wrong' })),
    (e: Error & { reason?: string }) => {
      assert.equal(e.reason, 'bad decrypt');
      return true;
    },
  );
  client.destroy();
  server.destroy();
  await listener.close();
});

check('files: readFile/listDir/fileInfo, null for missing paths', async () => {
  assert.equal(await bunTransport.readFile('/nonexistent/x'), null);
  assert.equal(await bunTransport.listDir('/nonexistent/x'), null);
  assert.equal(await bunTransport.fileInfo('/nonexistent/x'), null);
  const info = await bunTransport.fileInfo(env.clientKey);
  assert.equal(info?.isFile, true);
  assert.equal(info?.mode, 0o600);
  assert.equal(typeof bunTransport.uid, 'number');
  assert.deepEqual(await bunTransport.lookup('127.0.0.1'), ['127.0.0.1']);
});

let failed = 0;
for (const [name, fn] of checks) {
  const t0 = performance.now();
  try {
    await Promise.race([
      fn(),
      sleep(30_000).then(() => {
        throw new Error('timed out');
      }),
    ]);
    console.log(`ok      ${name} (${(performance.now() - t0).toFixed(0)} ms)`);
  } catch (e) {
    failed++;
    console.log(`not ok  ${name}: ${(e as Error)?.stack ?? String(e)}`);
  }
}
console.log(`${checks.length - failed} of ${checks.length} passed on bun ${Bun.version}`);
process.exit(failed ? 1 : 0);
