/**
 * A TLS record that does not decrypt, arriving after the handshake: what anyone on the path can
 * inject without the keys. PostgreSQL logs `SSL error: …` and drops the connection. node:tls keeps
 * such a failure to its internal '_tlsError' event on a TLSSocket whose control was not released
 * (tls.connect and tls.Server release it; a TLSSocket made around an accepted socket does not), so
 * before the fix `pgconn serve` on Node and Deno kept the connection open: until the authentication
 * timeout, or for good once the session had started. Every runtime, SSLRequest and direct TLS,
 * during authentication and in a session.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cstr,
  eventually,
  messages,
  rawConnect,
  type Served,
  SSL_REQUEST,
  serve,
  startupMessage,
  stopAllServers,
  tempDir,
  typed,
} from './serve-harness.ts';

const dir = tempDir('pgconn-serve-tls-records-');

afterAll(async () => {
  await stopAllServers();
  dir.remove();
});

/** An application-data record header and 64 random bytes: it cannot pass the AEAD check. */
const forgedRecord = (): Buffer =>
  Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 64]), randomBytes(64)]);

describe.each(['node', 'bun', 'deno'] as const)('pgconn serve --runtime %s', (runtime) => {
  const certs = join(dir.path, runtime);
  let server: Served;

  beforeAll(async () => {
    server = await serve(['--runtime', runtime, '--tls-dir', certs, '--direct-tls', '--auth', 'password']);
  }, 60_000);

  it.each([
    ['SSLRequest', 'authentication'],
    ['SSLRequest', 'a session'],
    ['direct TLS', 'authentication'],
    ['direct TLS', 'a session'],
  ] as const)(
    '%s, a forged record during %s: closed at once, "SSL error" logged',
    async (negotiation, when) => {
      const mark = server.log().length;
      const peer = await rawConnect(server.port);
      if (negotiation === 'SSLRequest') {
        peer.socket.write(SSL_REQUEST);
        expect((await peer.bytes(1)).toString()).toBe('S');
      }
      const tls = tlsConnect({
        socket: peer.socket,
        ca: readFileSync(join(certs, 'ca.crt')),
        servername: 'localhost',
        ALPNProtocols: ['postgresql'],
      });
      tls.on('error', () => {}); // the server's alert for the forged record
      await once(tls, 'secureConnect');
      let got = Buffer.alloc(0);
      tls.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d]);
      });
      const until = (type: string) => eventually(() => messages(got).some((m) => m.type === type));

      tls.write(startupMessage({ user: 'postgres', database: 'postgres' }));
      await until('R'); // AuthenticationCleartextPassword
      if (when === 'a session') {
        tls.write(typed('p', cstr('postgres')));
        await until('Z');
      }
      const t0 = Date.now();
      peer.socket.write(forgedRecord()); // under the TLS layer, straight onto the TCP connection
      await peer.closed(5000);
      expect(Date.now() - t0).toBeLessThan(1000);
      await eventually(() => /SSL error: \S/.test(server.logSince(mark)));
      expect(server.child.exitCode).toBeNull();
    },
  );
});
