/// <reference path="./bun.d.ts" />
/** Listening sockets for the server side (Bun.listen): accepted connections queue until taken. */
import type { Listener, ServerTransportSocket } from '@pgconn/core';
import { BunSocket } from './socket.ts';

/** Bun.listen shares one handler object between connections: each native socket carries its BunSocket. */
type Tagged = BunNative.Socket & { data?: BunSocket };

export class BunListener implements Listener {
  private server: BunNative.SocketListener | null = null;
  private readonly pending: BunSocket[] = [];
  private readonly waiters: Array<(s: BunSocket | null) => void> = [];
  private closed = false;

  static async listen(endpoint: { host: string; port: number }): Promise<BunListener> {
    const l = new BunListener();
    const on = (s: Tagged) => s.data;
    l.server = Bun.listen({
      hostname: endpoint.host,
      port: endpoint.port,
      socket: {
        open: (s: Tagged) => l.onOpen(s),
        data: (s: Tagged, d) => on(s)?.onRawData(d),
        drain: (s: Tagged) => on(s)?.onRawDrain(),
        end: (s: Tagged) => on(s)?.onRawEnd(),
        close: (s: Tagged, e) => on(s)?.onRawClose(e),
        error: (s: Tagged, e) => on(s)?.onRawError(e),
      },
    });
    return l;
  }

  private onOpen(native: Tagged): void {
    if (this.closed) {
      native.terminate();
      return;
    }
    native.setNoDelay(true);
    const s = new BunSocket('server');
    s.attach(native);
    native.data = s;
    const w = this.waiters.shift();
    if (w) w(s);
    else this.pending.push(s);
  }

  get host(): string {
    return this.server?.hostname ?? '';
  }

  get port(): number {
    return this.server?.port ?? 0;
  }

  accept(): Promise<ServerTransportSocket | null> {
    const s = this.pending.shift();
    if (s) return Promise.resolve(s);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiters.splice(0)) w(null);
    for (const s of this.pending.splice(0)) s.destroy();
    // Stop accepting; connections already handed out stay with their owners.
    this.server?.stop(false);
  }
}
