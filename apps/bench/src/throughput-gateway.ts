/**
 * pg-gateway (npm, Node) as a peer of `pgconn serve` for server-side handshakes: SSLRequest → TLS,
 * StartupMessage, password authentication, ReadyForQuery. pg-gateway 0.2.4 has no SCRAM-SHA-256
 * (its auth modes are none, cleartextPassword, md5Password and certificate), so it runs with MD5,
 * the closest challenge-response it offers; the report says so.
 *
 *   node dist/throughput-gateway.js --cert FILE --key FILE --user NAME --password SECRET
 *
 * Prints `listening on 127.0.0.1:PORT`; exits when stdin closes or on SIGTERM.
 */
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { hashMd5Password, PostgresConnection } from 'pg-gateway';
import { arg as argOf, exitWithParent } from './throughput/helper-process.ts';

const USAGE = 'throughput-gateway --cert F --key F --user U --password P';
const arg = (name: string): string => argOf(name, USAGE);

const cert = readFileSync(arg('--cert'));
const key = readFileSync(arg('--key'));
const user = arg('--user');
const password = arg('--password');

const server = net.createServer((socket) => {
  socket.on('error', () => socket.destroy());
  new PostgresConnection(socket, {
    serverVersion: '18.0',
    authMode: 'md5Password',
    tls: { cert, key },
    async validateCredentials(credentials) {
      if (credentials.authMode !== 'md5Password' || credentials.user !== user) return false;
      return credentials.hash === (await hashMd5Password(user, password, credentials.salt));
    },
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening on 127.0.0.1:${(server.address() as net.AddressInfo).port}\n`);
});
exitWithParent();
