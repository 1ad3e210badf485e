/**
 * `pgconn serve` against hand-written bytes on a raw TCP socket: the startup-phase cases a real
 * client never produces (pipelined plaintext after SSLRequest, bad lengths, repeated negotiation
 * requests, malformed cancel requests, a client that never speaks).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cancelRequest,
  errorFields,
  eventually,
  GSSENC_REQUEST,
  messageTypes,
  packet,
  rawConnect,
  type Served,
  SSL_REQUEST,
  serve,
  startupMessage,
  stopAllServers,
  tempDir,
  u32,
} from './serve-harness.ts';

const dir = tempDir('pgconn-serve-raw-');
let tls: Served; // --tls-dir (optional), --direct-tls, --auth-timeout 2
let plain: Served; // --tls off, --auth-timeout 2

beforeAll(async () => {
  [tls, plain] = await Promise.all([
    serve(['--tls-dir', dir.path, '--direct-tls', '--auth-timeout', '2']),
    serve(['--tls', 'off', '--auth-timeout', '2']),
  ]);
}, 30_000);

afterAll(async () => {
  await stopAllServers();
  dir.remove();
});

const USER = { user: 'postgres', database: 'postgres' };

/** Sends `bytes` in one write; returns what came back before the server closed, and how fast. */
async function oneShot(server: Served, bytes: Buffer): Promise<{ received: Buffer; ms: number }> {
  const peer = await rawConnect(server.port);
  peer.socket.write(bytes);
  const ms = await peer.closed();
  return { received: peer.received(), ms };
}

describe('raw startup packets', () => {
  it('SSLRequest and a StartupMessage in one write: closed with nothing sent (TLS on)', async () => {
    const mark = tls.log().length;
    const r = await oneShot(tls, Buffer.concat([SSL_REQUEST, startupMessage(USER)]));
    expect(r.received.length).toBe(0);
    await eventually(() => /received unencrypted data after SSL request/.test(tls.logSince(mark)));
    expect(tls.logSince(mark)).not.toMatch(/AUTHENTICATING|session started/);
  });

  it("SSLRequest and a StartupMessage in one write: 'N', FATAL 08P01, closed (TLS off)", async () => {
    const mark = plain.log().length;
    const r = await oneShot(plain, Buffer.concat([SSL_REQUEST, startupMessage(USER)]));
    expect(r.received.subarray(0, 1).toString()).toBe('N');
    expect(messageTypes(r.received, 1)).toEqual(['E']);
    expect(errorFields(r.received, 1)).toMatchObject({
      S: 'FATAL',
      C: '08P01',
      M: 'received unencrypted data after SSL request',
    });
    await eventually(() => /closed \(protocol-violation\)/.test(plain.logSince(mark)));
    expect(plain.logSince(mark)).not.toMatch(/AUTHENTICATING|session started/);
  });

  // PostgreSQL bounds the packet without its length word: 4 <= len - 4 <= 10000 (MAX_STARTUP_PACKET_LENGTH).
  it.each([
    ['length 3', u32(3)],
    [
      'length 10001 + 4 (one byte over)',
      Buffer.concat([u32(10005), u32(0x0003_0000), Buffer.alloc(64, 0x61)]),
    ],
  ])('startup %s: closed at once, nothing sent', async (_name, bytes) => {
    const mark = plain.log().length;
    const r = await oneShot(plain, bytes);
    expect(r.received.length).toBe(0);
    expect(r.ms).toBeLessThan(1500); // not the authentication timeout (2 s)
    await eventually(() =>
      /closed \(protocol-violation\): invalid length of startup packet/.test(plain.logSince(mark)),
    );
  });

  it('startup length 10000 + 4 (the maximum) is accepted', async () => {
    const filler = 10004 - startupMessage({ ...USER, application_name: '' }).length;
    const bytes = startupMessage({ ...USER, application_name: 'x'.repeat(filler) });
    expect(bytes.length).toBe(10004);
    const peer = await rawConnect(plain.port);
    peer.socket.write(bytes);
    const got = await peer.bytes(1);
    expect(messageTypes(got)).toEqual(['R']); // AuthenticationSASL
    peer.socket.destroy();
  });

  it('StartupMessage without its terminator: FATAL 08P01, closed', async () => {
    const bytes = packet(Buffer.concat([u32(0x0003_0000), Buffer.from('user\0postgres\0')]));
    const r = await oneShot(plain, bytes);
    expect(messageTypes(r.received)).toEqual(['E']);
    expect(errorFields(r.received)).toMatchObject({
      S: 'FATAL',
      C: '08P01',
      M: 'invalid startup packet layout: expected terminator as last byte',
    });
  });

  it("SSLRequest twice: 'N', then the second is an unsupported protocol version (TLS off)", async () => {
    const peer = await rawConnect(plain.port);
    peer.socket.write(SSL_REQUEST);
    expect((await peer.bytes(1)).toString()).toBe('N');
    peer.socket.write(SSL_REQUEST);
    await peer.closed();
    const got = peer.received();
    expect(messageTypes(got, 1)).toEqual(['E']);
    expect(errorFields(got, 1)).toMatchObject({
      C: '0A000',
      M: 'unsupported frontend protocol 1234.5679: server supports 3.0 to 3.2',
    });
  });

  it("SSLRequest twice with TLS on: 'S', then the plaintext second request breaks the handshake", async () => {
    const mark = tls.log().length;
    const peer = await rawConnect(tls.port);
    peer.socket.write(SSL_REQUEST);
    expect((await peer.bytes(1)).toString()).toBe('S');
    peer.socket.write(SSL_REQUEST);
    await peer.closed();
    // Whatever TLS alert came back, no PostgreSQL message did.
    expect(peer.received()[0]).toBe(0x53);
    await eventually(() => /closed \(tls-failed\)/.test(tls.logSince(mark)));
    expect(tls.logSince(mark)).not.toMatch(/StartupMessage/);
  });

  it("GSSENCRequest then SSLRequest: 'N', 'S', and TLS then works", async () => {
    const peer = await rawConnect(tls.port);
    peer.socket.write(GSSENC_REQUEST);
    expect((await peer.bytes(1)).toString()).toBe('N');
    peer.socket.write(SSL_REQUEST);
    expect((await peer.bytes(2)).toString()).toBe('NS');
    const secure = tlsConnect({
      socket: peer.socket,
      servername: 'localhost',
      ca: readFileSync(join(dir.path, 'ca.crt')),
      ALPNProtocols: ['postgresql'],
    });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    expect(secure.authorized).toBe(true);
    expect(secure.alpnProtocol).toBe('postgresql');
    const reply = new Promise<Buffer>((resolve) => secure.once('data', resolve));
    secure.write(startupMessage(USER));
    expect(messageTypes(await reply)).toEqual(['R']);
    secure.destroy();
  });

  it.each([
    ['0-byte', Buffer.alloc(0)],
    ['257-byte', Buffer.alloc(257, 7)],
  ])('CancelRequest with a %s key: closed, no reply', async (_name, key) => {
    const mark = plain.log().length;
    const r = await oneShot(plain, cancelRequest(1000, key));
    expect(r.received.length).toBe(0);
    await eventually(() =>
      /closed \(protocol-violation\): invalid length of cancel key in cancel request packet/.test(
        plain.logSince(mark),
      ),
    );
  });

  it('CancelRequest for no session: closed, no reply', async () => {
    const mark = plain.log().length;
    const r = await oneShot(plain, cancelRequest(424242, Buffer.alloc(4, 1)));
    expect(r.received.length).toBe(0);
    await eventually(() => /cancel request for process 424242: no such session/.test(plain.logSince(mark)));
  });

  it('a client that sends nothing, or stops during authentication, is closed at --auth-timeout 2', async () => {
    const mark = plain.log().length;
    const silent = await rawConnect(plain.port);
    const stalled = await rawConnect(plain.port);
    stalled.socket.write(startupMessage(USER));
    const [silentMs, stalledMs] = await Promise.all([silent.closed(6000), stalled.closed(6000)]);
    expect(silentMs).toBeGreaterThanOrEqual(1900);
    expect(silentMs).toBeLessThan(5000);
    expect(silent.received().length).toBe(0);
    expect(stalledMs).toBeGreaterThanOrEqual(1900);
    expect(stalledMs).toBeLessThan(5000);
    // It got its AuthenticationSASL and nothing after it (PostgreSQL says nothing at the timeout).
    expect(messageTypes(stalled.received())).toEqual(['R']);
    await eventually(() => (plain.logSince(mark).match(/closed \(timeout\)/g) ?? []).length === 2);
  });
});
