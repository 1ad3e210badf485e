/**
 * The runtime floor of section 6: the least a server on this runtime can do for a connection that
 * `pgbench -C` accepts — SSLRequest → 'S' → TLS → StartupMessage → AuthenticationOk, ReadyForQuery →
 * Terminate — with the runtime's cheapest TLS server and no pgconn code at all. It authenticates
 * nobody (trust): SCRAM's server-side work (two more round trips, a few HMACs) comes on top of it, so
 * its CPU per handshake and memory per idle connection are lower bounds for any PostgreSQL-speaking
 * TLS server on that runtime, pgconn serve included.
 *
 * TLS: Bun's native `Bun.listen` + `upgradeTLS` on Bun (what @pgconn/transport-bun uses); `node:net` +
 * `node:tls` on Node and on Deno (Deno's native API has no server-side STARTTLS).
 *
 *   <node|bun|deno run -A> dist/throughput-floorserver.js --cert FILE --key FILE
 *
 * Prints `listening on 127.0.0.1:PORT`; exits when stdin closes or on SIGTERM.
 */
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { arg as argOf, exitWithParent } from './throughput/helper-process.ts';

const USAGE = 'throughput-floorserver --cert FILE --key FILE';
const arg = (name: string): string => argOf(name, USAGE);

const cert = readFileSync(arg('--cert'), 'utf8');
const key = readFileSync(arg('--key'), 'utf8');

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

function message(type: string, body: Uint8Array): Uint8Array {
  const m = new Uint8Array(5 + body.length);
  m[0] = type.charCodeAt(0);
  new DataView(m.buffer).setInt32(1, 4 + body.length);
  m.set(body, 5);
  return m;
}

const concat = (parts: Uint8Array[]): Uint8Array => Buffer.concat(parts);

const enc = new TextEncoder();
/** AuthenticationOk, server_version, BackendKeyData, ReadyForQuery: one write after the startup packet. */
const WELCOME = concat([
  message('R', new Uint8Array(4)),
  message('S', enc.encode('server_version\u000018.0\u0000')),
  message('K', new Uint8Array(8)),
  message('Z', enc.encode('I')),
]);
const QUERY_ANSWER = concat([message('I', new Uint8Array(0)), message('Z', enc.encode('I'))]);
const S = enc.encode('S');
const N = enc.encode('N');

/**
 * One connection's bytes: the pre-TLS request, then (after `upgrade`) the startup packet and typed
 * messages. Plaintext after an SSLRequest is not this floor's concern: the client is pgbench.
 */
class Session {
  private buf: Uint8Array = new Uint8Array(0);
  private phase: 'request' | 'startup' | 'messages' = 'request';

  constructor(
    private readonly write: (b: Uint8Array) => void,
    private readonly upgrade: () => void,
    private readonly end: () => void,
  ) {}

  data(chunk: Uint8Array): void {
    this.buf = this.buf.length ? concat([this.buf, chunk]) : chunk;
    for (;;) {
      const b = this.buf;
      const head = this.phase === 'messages' ? 5 : 4;
      if (b.length < head) return;
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      const len = this.phase === 'messages' ? 1 + dv.getInt32(1) : dv.getInt32(0);
      if (len < (this.phase === 'messages' ? 5 : 8)) {
        this.end(); // shorter than any message of this phase: not a PostgreSQL client
        return;
      }
      if (b.length < len) return;
      this.buf = b.subarray(len);
      if (this.phase === 'request') {
        const code = dv.getInt32(4);
        if (code === SSL_REQUEST) {
          this.write(S);
          this.phase = 'startup';
          this.upgrade();
          return;
        }
        if (code === GSSENC_REQUEST) {
          this.write(N);
          continue;
        }
        this.phase = 'startup'; // a plaintext StartupMessage: answer it below
      }
      if (this.phase === 'startup') {
        this.phase = 'messages';
        this.write(WELCOME);
        continue;
      }
      const type = b[0];
      if (type === 0x58) {
        this.end(); // Terminate
        return;
      }
      if (type === 0x51) this.write(QUERY_ANSWER); // Query: EmptyQueryResponse, ReadyForQuery
    }
  }
}

interface BunSocket {
  write(b: Uint8Array): number;
  end(): void;
  data?: Session | undefined;
  upgradeTLS(o: { tls: { cert: string; key: string }; socket: BunHandlers }): [BunSocket, BunSocket];
}
interface BunHandlers {
  open?(s: BunSocket): void;
  data(s: BunSocket, d: Uint8Array): void;
  error?(s: BunSocket): void;
}
interface BunApi {
  listen(o: { hostname: string; port: number; socket: BunHandlers }): { port: number };
}

function listening(port: number): void {
  process.stdout.write(`listening on 127.0.0.1:${port}\n`);
}

const bun = (globalThis as { Bun?: BunApi }).Bun;
if (bun) {
  const server = bun.listen({
    hostname: '127.0.0.1',
    port: 0,
    socket: {
      open(raw) {
        let out = raw;
        raw.data = new Session(
          (b) => out.write(b),
          () => {
            const session = raw.data!;
            raw.data = undefined; // the raw handlers would see ciphertext from here on
            // Handlers of their own: the upgraded socket Bun passes to them is not `t` itself.
            const [, t] = raw.upgradeTLS({
              tls: { cert, key },
              socket: { data: (_s, d) => session.data(d), error: () => {} },
            });
            out = t;
          },
          () => out.end(),
        );
      },
      data: (s, d) => s.data?.data(d),
      error: () => {},
    },
  });
  listening(server.port);
} else {
  const secureContext = tls.createSecureContext({ cert, key });
  const server = net.createServer((raw) => {
    raw.setNoDelay(true);
    raw.on('error', () => raw.destroy());
    let out: net.Socket = raw;
    const session = new Session(
      (b) => out.write(b),
      () => {
        raw.removeAllListeners('data');
        raw.pause(); // Deno's node:tls takes the socket over only from a paused stream (measured: it hangs otherwise)
        const t = new tls.TLSSocket(raw, { isServer: true, secureContext });
        t.on('error', () => t.destroy());
        t.on('data', (d: Uint8Array) => session.data(d));
        t.on('end', () => t.end());
        out = t;
      },
      () => out.end(),
    );
    raw.on('data', (d: Uint8Array) => session.data(d));
  });
  server.listen(0, '127.0.0.1', () => listening((server.address() as net.AddressInfo).port));
}

exitWithParent();
