/// <reference path="./bun.d.ts" />
/**
 * The Bun transport: native sockets (Bun.connect, Bun.listen, upgradeTLS), Bun's resolver, and the
 * file access the core asks for (node:fs/promises, which Bun implements natively).
 */
import { readFileSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
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
import { BunListener } from './listener.ts';
import { BunSocket } from './socket.ts';
import { nativeClientTls, tlsError } from './tls-options.ts';

function abortError(): Error {
  const e = new Error('connection attempt aborted');
  e.name = 'AbortError';
  return e;
}

/** Node-style connect errors (`connect ECONNREFUSED 127.0.0.1:1`), keeping Bun's code. */
function connectError(e: unknown, endpoint: Endpoint): Error {
  const err = e instanceof Error ? e : new Error(String(e));
  const code = (err as { code?: string }).code;
  if (code && /^E[A-Z]+$/.test(code)) {
    const where = 'path' in endpoint ? endpoint.path : `${endpoint.host}:${endpoint.port}`;
    err.message = `connect ${code} ${where}`;
  }
  return err;
}

function tune(native: BunNative.Socket, o: ConnectOptions | undefined): void {
  native.setNoDelay(o?.noDelay ?? true);
  if (o?.keepAlive ?? true) native.setKeepAlive(true, o?.keepAliveInitialDelay ?? 0);
}

/**
 * Opens a native socket with `handlers`, honouring the abort signal: a connect that completes after
 * the abort is closed at once.
 */
async function open(
  options: Parameters<typeof Bun.connect>[0],
  endpoint: Endpoint,
  signal: AbortSignal | undefined,
): Promise<BunNative.Socket> {
  if (signal?.aborted) throw abortError();
  const connecting = Bun.connect(options);
  if (!signal) return connecting.catch((e) => Promise.reject(connectError(e, endpoint)));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      connecting.then(
        (s) => s.terminate(),
        () => {},
      );
      reject(abortError());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    connecting.then(
      (s) => {
        signal.removeEventListener('abort', onAbort);
        resolve(s);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(connectError(e, endpoint));
      },
    );
  });
}

const missing = (e: unknown): boolean => {
  const code = (e as { code?: string }).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
};

/** TLS files larger than this are read off the event loop. */
const SYNC_READ_MAX = 256 * 1024;

export class BunTransport implements Transport {
  readonly runtime = 'bun';
  readonly uid: number = process.getuid?.() ?? -1;

  async connect(endpoint: Endpoint, options?: ConnectOptions): Promise<TransportSocket> {
    const s = new BunSocket();
    const target =
      'path' in endpoint ? { unix: endpoint.path } : { hostname: endpoint.host, port: endpoint.port };
    const native = await open({ ...target, socket: s.rawHandlers }, endpoint, options?.signal);
    s.attach(native);
    if (!('path' in endpoint)) tune(native, options);
    return s;
  }

  async connectTls(
    endpoint: { host: string; port: number },
    tlsOptions: TlsClientOptions,
    options?: ConnectOptions,
  ): Promise<{ socket: TransportSocket; info: TlsInfo }> {
    let tls: BunNative.TLSOptions;
    try {
      tls = nativeClientTls(tlsOptions);
    } catch (e) {
      throw tlsError(e);
    }
    const s = new BunSocket();
    const handshake = s.expectHandshake();
    let native: BunNative.Socket;
    try {
      native = await open(
        { hostname: endpoint.host, port: endpoint.port, tls, socket: s.directTlsHandlers() },
        endpoint,
        options?.signal,
      );
    } catch (e) {
      handshake.catch(() => {});
      throw e;
    }
    s.attach(native);
    tune(native, options);
    const signal = options?.signal;
    const onAbort = () => s.destroy();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return { socket: s, info: await handshake };
    } catch (e) {
      s.destroy();
      throw e;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  listen(endpoint: { host: string; port: number }): Promise<Listener> {
    return BunListener.listen(endpoint);
  }

  async lookup(host: string): Promise<string[]> {
    const all = await Bun.dns.lookup(host);
    return all.map((a) => a.address);
  }

  /**
   * Small regular files synchronously, as the Node transport does (and says why); others off the loop.
   * A missing file costs no ENOENT Error (throwIfNoEntry), as on Node.
   */
  async readFile(path: string): Promise<Uint8Array | null> {
    try {
      const st = statSync(path, { throwIfNoEntry: false });
      if (!st) return null;
      const b = st.isFile() && st.size <= SYNC_READ_MAX ? readFileSync(path) : await readFile(path);
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      if (missing(e)) return null;
      throw e;
    }
  }

  async listDir(path: string): Promise<string[] | null> {
    try {
      return await readdir(path);
    } catch (e) {
      if (missing(e)) return null;
      throw e;
    }
  }

  async fileInfo(path: string): Promise<FileInfo | null> {
    try {
      const s = statSync(path, { throwIfNoEntry: false });
      if (!s) return null;
      return { isFile: s.isFile(), mode: s.mode & 0o7777, uid: s.uid };
    } catch (e) {
      if (missing(e)) return null;
      throw e;
    }
  }
}

/** A shared instance: the transport holds no per-connection state. */
export const bunTransport = new BunTransport();
