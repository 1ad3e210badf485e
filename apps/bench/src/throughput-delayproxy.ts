/**
 * A link with latency, for the direct TLS vs SSLRequest comparison: a TCP proxy on loopback that
 * forwards each chunk to 127.0.0.1:<target> after a fixed one-way delay, in both directions (so a
 * round trip costs twice the delay). On bare loopback the round trip direct TLS saves is tens of
 * microseconds, inside a handshake's run-to-run spread; across a network it is what the feature is for.
 *
 *   node dist/throughput-delayproxy.js --target PORT --delay-ms MS
 *
 * The delay is a Node timer, so whole milliseconds (a timer never fires early; 0.5 would mean 1).
 *
 * Prints `listening <port>`; exits when stdin closes (its parent is gone) or on SIGTERM.
 */
import * as net from 'node:net';
import { arg as argOf, exitWithParent } from './throughput/helper-process.ts';

const USAGE = 'throughput-delayproxy --target PORT --delay-ms MS';

function arg(name: string): number {
  const v = Number(argOf(name, USAGE));
  if (!Number.isFinite(v) || v < 0) {
    process.stderr.write(`usage: ${USAGE} (bad ${name})\n`);
    process.exit(2);
  }
  return v;
}

const target = arg('--target');
const delayMs = arg('--delay-ms');

/** Forwards `from` to `to` with the delay; timers of equal duration fire in order, so bytes stay ordered. */
function pipeDelayed(from: net.Socket, to: net.Socket): void {
  from.on('data', (chunk: Buffer) => {
    setTimeout(() => {
      if (!to.destroyed) to.write(chunk);
    }, delayMs);
  });
  from.on('end', () => setTimeout(() => to.end(), delayMs));
}

const server = net.createServer((client) => {
  client.setNoDelay(true);
  const upstream = net.connect({ host: '127.0.0.1', port: target });
  upstream.setNoDelay(true);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close);
  upstream.on('error', close);
  client.on('close', () => setTimeout(() => upstream.destroy(), delayMs));
  upstream.on('close', () => setTimeout(() => client.destroy(), delayMs));
  pipeDelayed(client, upstream);
  pipeDelayed(upstream, client);
});

server.listen(0, '127.0.0.1', () => {
  const a = server.address() as net.AddressInfo;
  process.stdout.write(`listening ${a.port}\n`);
});
exitWithParent();
