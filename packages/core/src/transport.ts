/**
 * The contract every runtime transport implements (types only). A transport moves bytes and performs
 * TLS handshakes with the material it is given; it makes no protocol or security decision: the core
 * decides from the TlsInfo it reports (verification is policy in core, mechanism in the transport).
 */

export type TlsVersion = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/** Where to connect: a TCP address or a Unix-domain socket path. */
export type Endpoint = { host: string; port: number } | { path: string };

export interface ConnectOptions {
  /** Aborts the connect (connect_timeout is enforced by the caller through this signal). */
  signal?: AbortSignal;
  keepAlive?: boolean;
  /** Idle seconds before the first keepalive probe (libpq's keepalives_idle). */
  keepAliveInitialDelay?: number;
  noDelay?: boolean;
}

/** What the transport hands to its TLS implementation. Material is already loaded (PEM or DER bytes). */
export interface TlsClientOptions {
  /** SNI host name; undefined means send none (IP literal, or sslsni=0). */
  servername?: string;
  /** ALPN protocols offered; pgconn always offers ["postgresql"]. */
  alpnProtocols: string[];
  /** Trusted roots (PEM). Undefined: no chain verification is requested (authorized is then false). */
  ca?: string[];
  /** Use the runtime's system trust store (sslrootcert=system). */
  useSystemCa?: boolean;
  /** Client certificate chain and key (PEM strings or DER bytes) and key passphrase. */
  cert?: string | Uint8Array;
  key?: string | Uint8Array;
  passphrase?: string;
  /** Certificate revocation lists (PEM). */
  crl?: string[];
  minVersion?: TlsVersion;
  maxVersion?: TlsVersion;
}

/** What a transport reports after a client TLS handshake completed. */
export interface TlsInfo {
  /** The chain verified against `ca` (host name NOT checked: the core does that). */
  authorized: boolean;
  /** Why the chain did not verify (e.g. 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_HAS_EXPIRED'). */
  authorizationError?: string;
  /** Leaf certificate, DER. Undefined when the runtime cannot provide it. */
  peerCertificate?: Uint8Array;
  /** Negotiated ALPN protocol, or null/undefined when none was selected. */
  alpnProtocol?: string | null;
  /** e.g. 'TLSv1.3'. */
  protocol?: string;
  /** e.g. 'TLS_AES_256_GCM_SHA384'. */
  cipher?: string;
}

/** A connected byte stream, plain or TLS. */
export interface TransportSocket {
  /**
   * Resolves with the next chunk, or null at end of stream. Each chunk must be a fresh buffer (or a
   * region the transport never rewrites): the framer keeps views into it without copying.
   */
  read(): Promise<Uint8Array | null>;
  /** Resolves once the bytes are accepted by the runtime (backpressure). */
  write(bytes: Uint8Array): Promise<void>;
  /** Upgrades this socket to TLS in place (after SSLRequest → 'S'). No read may be pending. */
  startTls(options: TlsClientOptions): Promise<TlsInfo>;
  /**
   * Sends close_notify when TLS is active, then FIN, and releases the socket. A client socket does
   * not wait for the peer (libpq's PQfinish neither); a server socket may wait for the client's FIN
   * for a short grace period, so a reset does not cut off its last ErrorResponse. Idempotent.
   */
  close(): Promise<void>;
  /** Closes at once without any goodbye (after a protocol violation). */
  destroy(): void;
}

/** Server-side TLS material and policy for an accepted connection. */
export interface TlsServerOptions {
  cert: string | Uint8Array;
  key: string | Uint8Array;
  passphrase?: string;
  /** CAs that client certificates must chain to (ssl_ca_file). */
  ca?: string[];
  crl?: string[];
  /** Ask the client for a certificate (not required: the core decides from `authorized`). */
  requestCert?: boolean;
  /** ALPN protocols the server selects from; pgconn offers ["postgresql"]. */
  alpnProtocols: string[];
  minVersion?: TlsVersion;
  maxVersion?: TlsVersion;
}

/** An accepted connection. TlsInfo from startServerTls describes the CLIENT's certificate. */
export interface ServerTransportSocket extends TransportSocket {
  readonly remoteAddress: string;
  readonly remotePort: number;
  /**
   * Upgrades to TLS as the server. `pending`: bytes already read that belong to the TLS stream (the
   * ClientHello of a direct TLS connection); they are fed to TLS first.
   */
  startServerTls(options: TlsServerOptions, pending?: Uint8Array): Promise<TlsInfo>;
}

/** A listening socket. */
export interface Listener {
  readonly host: string;
  readonly port: number;
  /** The next accepted connection, or null once the listener is closed. */
  accept(): Promise<ServerTransportSocket | null>;
  /** Stops accepting; open connections are left to their owners. */
  close(): Promise<void>;
}

/** Metadata the core needs to apply libpq's key-file permission rule. */
export interface FileInfo {
  isFile: boolean;
  /** Permission bits (st_mode & 0o7777). */
  mode: number;
  /** Owner uid, or -1 where the runtime does not know it. */
  uid: number;
}

export interface Transport {
  /** Human-readable runtime name for traces ('node', 'bun', 'deno'). */
  readonly runtime: string;
  connect(endpoint: Endpoint, options?: ConnectOptions): Promise<TransportSocket>;
  /** Direct TLS (sslnegotiation=direct): the ClientHello is the first byte sent. */
  connectTls(
    endpoint: { host: string; port: number },
    tls: TlsClientOptions,
    options?: ConnectOptions,
  ): Promise<{ socket: TransportSocket; info: TlsInfo }>;
  /** Resolves a host name to addresses (in the resolver's order). */
  lookup(host: string): Promise<string[]>;
  /** Reads a whole file, or null when it does not exist. */
  readFile(path: string): Promise<Uint8Array | null>;
  /** Lists a directory's entry names, or null when it does not exist (sslcrldir). */
  listDir(path: string): Promise<string[] | null>;
  /** Stats a file, or null when it does not exist. */
  fileInfo(path: string): Promise<FileInfo | null>;
  /** The current process's uid (-1 where unknown), for the key-file ownership rule. */
  readonly uid: number;
  /** Listens on a TCP address (port 0: any free port). */
  listen(endpoint: { host: string; port: number }, options?: { backlog?: number }): Promise<Listener>;
}
