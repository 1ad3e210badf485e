/**
 * A fault-injection TCP proxy for reliability tests (issue 8): listens on 127.0.0.1 (port 0) and
 * forwards every accepted connection to a target port on 127.0.0.1, byte for byte, until byte N of
 * one direction, where it can
 *
 *   - `cut`:    forward bytes [0, N), then destroy both sockets (a reset in the middle of a message);
 *   - `stall`:  forward bytes [0, N), then forward nothing more in that direction, forever (both
 *               sockets stay open: only the peer's timeout can end it);
 *   - `flip`:   XOR one bit of byte N (bit 0 by default);
 *   - `inject`: insert the given bytes before byte N.
 *
 * A fault at an N the direction never reaches does nothing. Offsets count per connection and per
 * direction: `c2s` is client → server, `s2c` server → client. The proxy counts the bytes each
 * direction carried (before the fault was applied) and keeps the first `recordLimit` bytes of each,
 * so a test can scan the plaintext the client sent before TLS, or find the TLS record headers. `close()` destroys every socket and the
 * listener.
 */
import * as net from 'node:net';

export type FaultDirection = 'c2s' | 's2c';
export type FaultKind = 'cut' | 'stall' | 'flip' | 'inject';

export interface Fault {
  direction: FaultDirection;
  /** Byte offset in that direction of each connection. */
  at: number;
  kind: FaultKind;
  /** For `flip`: which bit (0-7). Default 0. */
  bit?: number;
  /** For `inject`: the bytes inserted before byte `at`. Default one 0x00 byte. */
  bytes?: Uint8Array;
}

export interface FaultProxyOptions {
  /** The port on 127.0.0.1 to forward to. */
  targetPort: number;
  /** The fault applied to every connection; none: a transparent proxy (to measure lengths). */
  fault?: Fault | null;
  /** How many bytes of each direction to keep per connection (default 64 KiB). */
  recordLimit?: number;
}

export interface ProxiedConnection {
  /** Bytes each direction carried, as received by the proxy. */
  readonly bytes: Record<FaultDirection, number>;
  /** The first `recordLimit` bytes the client sent (before any fault was applied). */
  readonly clientBytes: Uint8Array;
  /** The first `recordLimit` bytes the server sent (before any fault was applied). */
  readonly serverBytes: Uint8Array;
  /** True once the fault's offset was reached on this connection. */
  readonly faulted: boolean;
  /** Resolves when both sockets are closed. */
  readonly closed: Promise<void>;
}

export interface FaultProxy {
  readonly port: number;
  readonly connections: readonly ProxiedConnection[];
  /** Bytes each direction carried, summed over all connections. */
  readonly totals: Record<FaultDirection, number>;
  /** Changes the fault for connections accepted from now on. */
  setFault(fault: Fault | null): void;
  /** Destroys every socket and closes the listener. Idempotent. */
  close(): Promise<void>;
}

class Conn implements ProxiedConnection {
  readonly bytes: Record<FaultDirection, number> = { c2s: 0, s2c: 0 };
  faulted = false;
  private readonly kept: Record<FaultDirection, Buffer[]> = { c2s: [], s2c: [] };
  private readonly keptLength: Record<FaultDirection, number> = { c2s: 0, s2c: 0 };
  private readonly stalled: Record<FaultDirection, boolean> = { c2s: false, s2c: false };
  readonly closed: Promise<void>;

  constructor(
    private readonly client: net.Socket,
    private readonly server: net.Socket,
    private readonly fault: Fault | null,
    private readonly recordLimit: number,
  ) {
    const closedOf = (s: net.Socket) => new Promise<void>((r) => s.once('close', () => r()));
    this.closed = Promise.all([closedOf(client), closedOf(server)]).then(() => {});
    for (const s of [client, server]) {
      s.on('error', () => this.destroy());
      s.once('close', () => this.destroy());
    }
    client.on('data', (d: Buffer) => this.onData('c2s', d));
    server.on('data', (d: Buffer) => this.onData('s2c', d));
    // A half close travels on, unless the direction is stalled (then nothing more does).
    client.on('end', () => {
      if (!this.stalled.c2s) server.end();
    });
    server.on('end', () => {
      if (!this.stalled.s2c) client.end();
    });
  }

  get clientBytes(): Uint8Array {
    return Buffer.concat(this.kept.c2s);
  }

  get serverBytes(): Uint8Array {
    return Buffer.concat(this.kept.s2c);
  }

  destroy(): void {
    this.client.destroy();
    this.server.destroy();
  }

  private onData(dir: FaultDirection, chunk: Buffer): void {
    const start = this.bytes[dir];
    this.bytes[dir] += chunk.length;
    if (this.keptLength[dir] < this.recordLimit) {
      const keep = chunk.subarray(0, this.recordLimit - this.keptLength[dir]);
      this.kept[dir].push(Buffer.from(keep));
      this.keptLength[dir] += keep.length;
    }
    if (this.stalled[dir]) return;
    const to = dir === 'c2s' ? this.server : this.client;
    const f = this.fault;
    let out: Buffer = chunk;
    if (f && f.direction === dir && !this.faulted && f.at >= start && f.at < start + chunk.length) {
      this.faulted = true;
      const i = f.at - start;
      switch (f.kind) {
        case 'cut':
          if (i > 0) to.write(chunk.subarray(0, i));
          // Let the bytes before N leave, then reset both sides.
          setImmediate(() => this.destroy());
          this.stalled[dir] = true;
          return;
        case 'stall':
          if (i > 0) to.write(chunk.subarray(0, i));
          this.stalled[dir] = true;
          return;
        case 'flip':
          out = Buffer.from(chunk);
          out[i] = out[i]! ^ (1 << (f.bit ?? 0));
          break;
        case 'inject':
          out = Buffer.concat([chunk.subarray(0, i), f.bytes ?? Buffer.of(0), chunk.subarray(i)]);
          break;
      }
    }
    if (!to.destroyed && to.writable) to.write(out);
  }
}

/** Starts a proxy in front of 127.0.0.1:targetPort. */
export function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  let fault = opts.fault ?? null;
  const recordLimit = opts.recordLimit ?? 64 * 1024;
  const connections: Conn[] = [];
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  let closing = false;
  const listener = net.createServer({ pauseOnConnect: true }, (client) => {
    track(client);
    if (closing) {
      client.destroy();
      return;
    }
    const server = net.connect({ host: '127.0.0.1', port: opts.targetPort });
    track(server);
    server.setNoDelay(true);
    client.setNoDelay(true);
    connections.push(new Conn(client, server, fault, recordLimit));
    server.once('connect', () => client.resume());
  });
  return new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(0, '127.0.0.1', () => {
      const addr = listener.address() as net.AddressInfo;
      let closed: Promise<void> | null = null;
      resolve({
        port: addr.port,
        connections,
        get totals() {
          const t = { c2s: 0, s2c: 0 };
          for (const c of connections) {
            t.c2s += c.bytes.c2s;
            t.s2c += c.bytes.s2c;
          }
          return t;
        },
        setFault(f) {
          fault = f;
        },
        close() {
          closing = true;
          closed ??= new Promise<void>((r) => {
            listener.close(() => r());
            for (const s of sockets) s.destroy();
          }).then(async () => {
            await Promise.all(connections.map((c) => c.closed));
          });
          return closed;
        },
      });
    });
  });
}
