/** The Node transport: net + tls sockets, DNS, and the file access the core asks for. */
import { lookup } from 'node:dns/promises';
import { readFileSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import * as net from 'node:net';
import type {
  ConnectOptions,
  Endpoint,
  FileInfo,
  Listener,
  TlsClientOptions,
  TlsInfo,
  Transport,
  TransportSocket,
} from '@pgconn/core';
import { startClientTls } from './client-tls.ts';
import { NodeListener } from './listener.ts';
import { NodeSocket } from './socket.ts';
import { tlsConnectOptions, tlsInfoOf } from './tls-options.ts';

function abortError(): Error {
  const e = new Error('connection attempt aborted');
  e.name = 'AbortError';
  return e;
}

/** Waits for `event` on a fresh socket, failing on 'error' or when the signal aborts. */
function established<S extends net.Socket>(sock: S, event: string, signal?: AbortSignal): Promise<S> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      sock.off(event, onOk);
      sock.off('error', onErr);
      signal?.removeEventListener('abort', onAbort);
    };
    const onOk = () => {
      cleanup();
      resolve(sock);
    };
    const onErr = (e: Error) => {
      cleanup();
      sock.destroy();
      reject(e);
    };
    const onAbort = () => onErr(abortError());
    if (signal?.aborted) return onAbort();
    sock.once(event, onOk);
    sock.once('error', onErr);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function tune(sock: net.Socket, o: ConnectOptions | undefined): void {
  sock.setNoDelay(o?.noDelay ?? true);
  if (o?.keepAlive ?? true) sock.setKeepAlive(true, (o?.keepAliveInitialDelay ?? 0) * 1000);
}

/** Larger TLS files (a system bundle, a CRL directory's worth) are read off the event loop. */
const SYNC_READ_MAX = 256 * 1024;

export class NodeTransport implements Transport {
  readonly runtime = 'node';
  readonly uid: number = process.getuid?.() ?? -1;

  async connect(endpoint: Endpoint, options?: ConnectOptions): Promise<TransportSocket> {
    const sock =
      'path' in endpoint
        ? net.connect({ path: endpoint.path })
        : net.connect({ host: endpoint.host, port: endpoint.port });
    await established(sock, 'connect', options?.signal);
    if (!('path' in endpoint)) tune(sock, options);
    return new NodeSocket(sock);
  }

  async connectTls(
    endpoint: { host: string; port: number },
    tlsOptions: TlsClientOptions,
    options?: ConnectOptions,
  ): Promise<{ socket: TransportSocket; info: TlsInfo }> {
    const raw = net.connect({ host: endpoint.host, port: endpoint.port });
    await established(raw, 'connect', options?.signal);
    tune(raw, options);
    try {
      const sock = await established(
        startClientTls(raw, tlsConnectOptions(tlsOptions)),
        'secureConnect',
        options?.signal,
      );
      return { socket: new NodeSocket(sock), info: tlsInfoOf(sock) };
    } catch (e) {
      raw.destroy();
      throw e;
    }
  }

  listen(endpoint: { host: string; port: number }, options?: { backlog?: number }): Promise<Listener> {
    return NodeListener.listen(endpoint, options?.backlog);
  }

  async lookup(host: string): Promise<string[]> {
    const all = await lookup(host, { all: true, verbatim: true });
    return all.map((a) => a.address);
  }

  /**
   * TLS files are read on every connection, as libpq reads them. A small regular file is read
   * synchronously: 7–13 µs of event-loop time for a 2 KB file, where fs/promises took 245–265 µs of
   * latency in four thread-pool hops (measured here, 200 reads each). Anything else (a
   * FIFO, a device, a large file) is read asynchronously, so it cannot stall the loop. A missing
   * file (the default ~/.postgresql/postgresql.crt and root.crl, most of the time) is found without an
   * ENOENT Error: building one, stack and all, cost more than the stat.
   */
  async readFile(path: string): Promise<Uint8Array | null> {
    try {
      const st = statSync(path, { throwIfNoEntry: false });
      if (!st) return null;
      const b = st.isFile() && st.size <= SYNC_READ_MAX ? readFileSync(path) : await readFile(path);
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR')
        return null;
      throw e;
    }
  }

  async listDir(path: string): Promise<string[] | null> {
    try {
      return await readdir(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR')
        return null;
      throw e;
    }
  }

  async fileInfo(path: string): Promise<FileInfo | null> {
    try {
      const s = statSync(path, { throwIfNoEntry: false }); // stat never waits on the file's content
      if (!s) return null;
      return { isFile: s.isFile(), mode: s.mode & 0o7777, uid: s.uid };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR')
        return null;
      throw e;
    }
  }
}

/** A shared instance: the transport holds no per-connection state. */
export const nodeTransport = new NodeTransport();
