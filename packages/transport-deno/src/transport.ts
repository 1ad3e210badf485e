/**
 * The Deno transport: native `Deno.connect` / `Deno.listen` for every socket, Deno's node:tls (over a
 * Duplex on the native connection) for every TLS handshake, getaddrinfo through node:dns, files
 * through Deno's file APIs. README.md explains, feature by feature, why native TLS is not used.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
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
import { abortError, isMissing, osError } from './errors.ts';
import { DenoListener } from './listener.ts';
import { DenoSocket } from './socket.ts';

/** Deno.connect takes IPv6 literals in brackets. */
const hostname = (host: string): string => (host.includes(':') && !host.startsWith('[') ? `[${host}]` : host);

/** Resolves with the connection, or rejects when `signal` aborts first (then closing the late one). */
async function abortable<C extends Deno.Conn>(opening: Promise<C>, signal?: AbortSignal): Promise<C> {
  if (!signal) return opening;
  if (signal.aborted) {
    opening.then((c) => c.close()).catch(() => {});
    throw abortError();
  }
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortError());
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([opening, aborted]);
  } catch (e) {
    opening.then((c) => c.close()).catch(() => {});
    throw e;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** TLS files larger than this are read off the event loop. */
const SYNC_READ_MAX = 256 * 1024;

export class DenoTransport implements Transport {
  readonly runtime = 'deno';
  private cachedUid: number | undefined;

  /** Deno.uid() (needs --allow-sys=uid; -1 without it, or on Windows). */
  get uid(): number {
    if (this.cachedUid === undefined) {
      try {
        this.cachedUid = Deno.uid() ?? -1;
      } catch {
        this.cachedUid = -1;
      }
    }
    return this.cachedUid;
  }

  async connect(endpoint: Endpoint, options?: ConnectOptions): Promise<TransportSocket> {
    return this.open(endpoint, options);
  }

  private async open(endpoint: Endpoint, options?: ConnectOptions): Promise<DenoSocket> {
    const signal = options?.signal;
    if (signal?.aborted) throw abortError();
    let conn: Deno.Conn;
    try {
      if ('path' in endpoint) {
        conn = await abortable(Deno.connect({ transport: 'unix', path: endpoint.path }), signal);
      } else {
        const tcp = await abortable(
          Deno.connect({
            transport: 'tcp',
            hostname: hostname(endpoint.host),
            port: endpoint.port,
            ...(signal ? { signal } : {}),
          }),
          signal,
        );
        tcp.setNoDelay(options?.noDelay ?? true);
        // keepalives_idle (keepAliveInitialDelay) cannot be set: Deno's setKeepAlive takes no delay.
        tcp.setKeepAlive(options?.keepAlive ?? true);
        conn = tcp;
      }
    } catch (e) {
      if (signal?.aborted) throw abortError();
      throw osError(e);
    }
    return new DenoSocket(conn);
  }

  async connectTls(
    endpoint: { host: string; port: number },
    tls: TlsClientOptions,
    options?: ConnectOptions,
  ): Promise<{ socket: TransportSocket; info: TlsInfo }> {
    const socket = await this.open(endpoint, options);
    try {
      const info = await socket.upgradeClient(tls, options?.signal);
      return { socket, info };
    } catch (e) {
      socket.destroy();
      throw e;
    }
  }

  async listen(endpoint: { host: string; port: number }, _options?: { backlog?: number }): Promise<Listener> {
    return DenoListener.listen(endpoint);
  }

  /** getaddrinfo (as libpq), so /etc/hosts counts; Deno.resolveDns asks DNS servers only. */
  async lookup(host: string): Promise<string[]> {
    if (isIP(host)) return [host];
    const all = await lookup(host, { all: true, verbatim: true });
    return all.map((a) => a.address);
  }

  /** Small regular files synchronously, as the Node transport does (and says why); others off the loop. */
  async readFile(path: string): Promise<Uint8Array | null> {
    try {
      const st = Deno.statSync(path);
      return st.isFile && st.size <= SYNC_READ_MAX ? Deno.readFileSync(path) : await Deno.readFile(path);
    } catch (e) {
      if (isMissing(e)) return null;
      throw osError(e);
    }
  }

  async listDir(path: string): Promise<string[] | null> {
    try {
      const names: string[] = [];
      for await (const entry of Deno.readDir(path)) names.push(entry.name);
      return names;
    } catch (e) {
      if (isMissing(e)) return null;
      throw osError(e);
    }
  }

  async fileInfo(path: string): Promise<FileInfo | null> {
    try {
      const s = Deno.statSync(path);
      return { isFile: s.isFile, mode: (s.mode ?? 0) & 0o7777, uid: s.uid ?? -1 };
    } catch (e) {
      if (isMissing(e)) return null;
      throw osError(e);
    }
  }
}

/** A shared instance: the transport holds no per-connection state. */
export const denoTransport = new DenoTransport();
