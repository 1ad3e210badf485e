/** The server side: `Deno.listen` (TCP); accepted connections are plain DenoSockets until upgraded. */
import type { Listener, ServerTransportSocket } from '@pgconn/core';
import { osError } from './errors.ts';
import { DenoSocket } from './socket.ts';

export class DenoListener implements Listener {
  private readonly listener: Deno.Listener<Deno.TcpConn, Deno.NetAddr>;
  private closed = false;

  private constructor(listener: Deno.Listener<Deno.TcpConn, Deno.NetAddr>) {
    this.listener = listener;
  }

  /** Deno.listen has no backlog option: the runtime's default is used. */
  static listen(endpoint: { host: string; port: number }): DenoListener {
    try {
      return new DenoListener(
        Deno.listen({ hostname: endpoint.host, port: endpoint.port, transport: 'tcp' }),
      );
    } catch (e) {
      throw osError(e);
    }
  }

  get host(): string {
    return this.listener.addr.hostname;
  }

  get port(): number {
    return this.listener.addr.port;
  }

  async accept(): Promise<ServerTransportSocket | null> {
    if (this.closed) return null;
    let conn: Deno.TcpConn;
    try {
      conn = await this.listener.accept();
    } catch (e) {
      if (this.closed) return null;
      throw osError(e);
    }
    if (this.closed) {
      conn.close();
      return null;
    }
    conn.setNoDelay(true);
    return new DenoSocket(conn);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    try {
      this.listener.close();
    } catch {
      // already closed
    }
    return Promise.resolve();
  }
}
