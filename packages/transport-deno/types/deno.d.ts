/**
 * The few Deno APIs this package uses, declared for the repository's `tsc` (which runs with Node's
 * types). Shapes follow Deno 2.9's lib.deno.d.ts; `deno check` uses Deno's own declarations instead
 * (this file is listed in tsconfig.json only, never imported).
 */
declare namespace Deno {
  interface NetAddr {
    transport: 'tcp' | 'udp';
    hostname: string;
    port: number;
  }
  interface UnixAddr {
    transport: 'unix' | 'unixpacket';
    path: string;
  }
  type Addr = NetAddr | UnixAddr;

  interface Conn<A extends Addr = Addr> {
    readonly localAddr: A;
    readonly remoteAddr: A;
    read(p: Uint8Array): Promise<number | null>;
    write(p: Uint8Array): Promise<number>;
    close(): void;
    closeWrite(): Promise<void>;
  }
  interface TcpConn extends Conn<NetAddr> {
    setNoDelay(noDelay?: boolean): void;
    setKeepAlive(keepAlive?: boolean): void;
  }
  interface UnixConn extends Conn<UnixAddr> {}

  interface Listener<C extends Conn = Conn, A extends Addr = Addr> extends AsyncIterable<C> {
    readonly addr: A;
    accept(): Promise<C>;
    close(): void;
  }

  interface ConnectOptions {
    port: number;
    hostname?: string;
    transport?: 'tcp';
    signal?: AbortSignal;
  }
  interface UnixConnectOptions {
    transport: 'unix';
    path: string;
  }
  function connect(options: ConnectOptions): Promise<TcpConn>;
  function connect(options: UnixConnectOptions): Promise<UnixConn>;

  interface TcpListenOptions {
    port: number;
    hostname?: string;
    transport?: 'tcp';
  }
  function listen(options: TcpListenOptions): Listener<TcpConn, NetAddr>;

  interface DirEntry {
    name: string;
    isFile: boolean;
    isDirectory: boolean;
    isSymlink: boolean;
  }
  interface FileInfo {
    isFile: boolean;
    isDirectory: boolean;
    size: number;
    mode: number | null;
    uid: number | null;
  }
  function readFile(path: string | URL): Promise<Uint8Array<ArrayBuffer>>;
  function readFileSync(path: string | URL): Uint8Array<ArrayBuffer>;
  function readTextFileSync(path: string | URL): string;
  function readDir(path: string | URL): AsyncIterable<DirEntry>;
  function stat(path: string | URL): Promise<FileInfo>;
  function statSync(path: string | URL): FileInfo;
  function uid(): number | null;

  const env: {
    get(key: string): string | undefined;
    toObject(): Record<string, string>;
  };
  const args: string[];
  function exit(code?: number): never;
}
