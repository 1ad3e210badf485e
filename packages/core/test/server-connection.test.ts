/**
 * A session's reader when the socket fails rather than closes: next() ends the session (null) and
 * readFailure says why in PostgreSQL's log words; an orderly close leaves it null.
 */
import { describe, expect, it } from 'vitest';
import type { ServerSession } from '../src/server/handshake.ts';
import { ServerConnection } from '../src/server-connection.ts';
import type { ServerTransportSocket } from '../src/transport.ts';

/** A socket whose first read ends with `outcome`: rejected with it, or null (the peer's FIN). */
function socketEndingWith(outcome: Error | null): ServerTransportSocket {
  return {
    remoteAddress: '127.0.0.1',
    remotePort: 5432,
    read: () => (outcome ? Promise.reject(outcome) : Promise.resolve(null)),
    write: async () => {},
    startTls: () => Promise.reject(new Error('not used')),
    startServerTls: () => Promise.reject(new Error('not used')),
    close: async () => {},
    destroy: () => {},
  };
}

const session = { leftover: new Uint8Array(0) } as ServerSession;

describe('ServerConnection.readFailure', () => {
  it.each([
    [
      'a TLS record that does not decrypt',
      Object.assign(new Error('80ACE3AD:error:0A000119:SSL routines:ssl3_get_record:decryption failed'), {
        reason: 'decryption failed or bad record mac',
      }),
      'SSL error: decryption failed or bad record mac',
    ],
    ['a reset', new Error('read ECONNRESET\n'), 'could not receive data from client: read ECONNRESET'],
    ['an orderly close', null, null],
  ] as const)('%s', async (_what, outcome, expected) => {
    const conn = new ServerConnection(socketEndingWith(outcome), session);
    expect(conn.readFailure).toBeNull();
    expect(await conn.next()).toBeNull();
    expect(conn.readFailure).toBe(expected);
  });
});
