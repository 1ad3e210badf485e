/** Listening sockets for the server side: accepted connections queue until the application takes them. */
import * as net from 'node:net';
import type { Listener, ServerTransportSocket } from '@pgconn/core';
import { NodeSocket } from './socket.ts';

export class NodeListener implements Listener {
  private readonly server: net.Server;
  private readonly pending: NodeSocket[] = [];
  private readonly waiters: Array<(s: NodeSocket | null) => void> = [];
  private closed = false;

  private constructor(server: net.Server) {
    this.server = server;
    server.on('connection', (sock) => {
      sock.setNoDelay(true);
      const s = new NodeSocket(sock, 'server');
      const w = this.waiters.shift();
      if (w) w(s);
      else this.pending.push(s);
    });
  }

  static listen(endpoint: { host: string; port: number }, backlog = 511): Promise<NodeListener> {
    const server = net.createServer({ pauseOnConnect: false });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: endpoint.host, port: endpoint.port, backlog }, () => {
        server.off('error', reject);
        resolve(new NodeListener(server));
      });
    });
  }

  get host(): string {
    const a = this.server.address();
    return a && typeof a === 'object' ? a.address : '';
  }

  get port(): number {
    const a = this.server.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  accept(): Promise<ServerTransportSocket | null> {
    const s = this.pending.shift();
    if (s) return Promise.resolve(s);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const w of this.waiters.splice(0)) w(null);
    for (const s of this.pending.splice(0)) s.destroy();
    // net.Server's close callback waits until every accepted connection has ended, but those belong
    // to their owners (who may end them only after this resolves): the listening socket itself is
    // closed at once, so resolve now.
    this.server.close();
    return Promise.resolve();
  }
}
