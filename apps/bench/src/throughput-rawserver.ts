/**
 * The far end of the raw socket ceiling: a plain TCP and a TLS listener on loopback, in a process of
 * their own (Node). A client sends one line:
 *
 *   `R <bytes> <chunk>\n`  the server writes <bytes> in <chunk>-byte writes (waiting for 'drain'), then ends;
 *   `W <bytes>\n`          the server reads <bytes>, then answers `K`.
 *
 *   node dist/throughput-rawserver.js --cert FILE --key FILE
 *
 * Prints `listening <plainPort> <tlsPort>`; exits when stdin closes (its parent is gone) or on SIGTERM.
 */
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { arg as argOf, exitWithParent } from './throughput/helper-process.ts';

const USAGE = 'throughput-rawserver --cert FILE --key FILE';
const arg = (name: string): string => argOf(name, USAGE);

function serve(s: net.Socket): void {
  s.setNoDelay(true);
  let head = '';
  let toRead = -1;
  s.on('error', () => s.destroy());
  const onData = (d: Buffer) => {
    if (toRead >= 0) {
      toRead -= d.length;
      if (toRead <= 0) {
        toRead = -1;
        s.write('K');
      }
      return;
    }
    const nl = d.indexOf(0x0a);
    if (nl < 0) {
      head += d.toString('latin1');
      if (head.length > 100) s.destroy();
      return;
    }
    const line = head + d.toString('latin1', 0, nl);
    head = '';
    const [op, a, b] = line.trim().split(/\s+/);
    const bytes = Number(a);
    if (op === 'W' && bytes > 0) {
      toRead = bytes;
      const rest = d.subarray(nl + 1);
      if (rest.length) onData(rest);
    } else if (op === 'R' && bytes > 0) {
      void source(s, bytes, Number(b) || 64 * 1024);
    } else s.destroy();
  };
  s.on('data', onData);
}

async function source(s: net.Socket, bytes: number, chunkSize: number): Promise<void> {
  const chunk = Buffer.alloc(chunkSize, 0x78);
  for (let sent = 0; sent < bytes && !s.destroyed; ) {
    const n = Math.min(chunkSize, bytes - sent);
    if (!s.write(n === chunkSize ? chunk : chunk.subarray(0, n))) {
      // Both listeners go when either fires: a 'close' listener left behind per wait piles up
      // (~15,000 per GB) and cost this producer ~0.6 s of CPU per GB (1.5 instead of 0.9).
      await new Promise<void>((r) => {
        const done = () => {
          s.off('drain', done);
          s.off('close', done);
          r();
        };
        s.on('drain', done);
        s.on('close', done);
      });
    }
    sent += n;
  }
  s.end();
}

const cert = readFileSync(arg('--cert'));
const key = readFileSync(arg('--key'));
const plain = net.createServer(serve);
const secure = tls.createServer({ cert, key }, serve);
const listen = (srv: net.Server): Promise<number> =>
  new Promise((resolve) =>
    srv.listen(0, '127.0.0.1', () => resolve((srv.address() as net.AddressInfo).port)),
  );

Promise.all([listen(plain), listen(secure)]).then(([p, t]) => process.stdout.write(`listening ${p} ${t}\n`));
exitWithParent();
