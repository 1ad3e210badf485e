/**
 * The small part of Bun's API this transport uses (bun-types is not a dependency). Shapes follow Bun
 * 1.4's native sockets (`Bun.connect`, `Bun.listen`, `socket.upgradeTLS`) as measured on that version.
 */

declare namespace BunNative {
  /** Native TLS options (BoringSSL). Versions are TLS wire numbers (0x0303 = TLS 1.2). */
  interface TLSOptions {
    ca?: string | string[];
    cert?: string | string[];
    key?: string | string[];
    passphrase?: string;
    crl?: string | string[];
    serverName?: string;
    /** Wire format: length-prefixed protocol names (`\x0apostgresql`); a plain string is ignored. */
    ALPNProtocols?: Uint8Array;
    rejectUnauthorized?: boolean;
    requestCert?: boolean;
    minVersion?: number;
    maxVersion?: number;
  }

  interface SocketHandler {
    open?(socket: Socket): void;
    data?(socket: Socket, data: Uint8Array): void;
    drain?(socket: Socket): void;
    end?(socket: Socket): void;
    close?(socket: Socket, error?: Error): void;
    error?(socket: Socket, error: Error): void;
    connectError?(socket: Socket, error: Error): void;
    /** Called after every TLS handshake; `ok` is false when it failed or the host name did not match. */
    handshake?(socket: Socket, ok: boolean, error: (Error & { code?: string }) | null): void;
    timeout?(socket: Socket): void;
    binaryType?: 'buffer' | 'uint8array';
  }

  interface PeerCertificate {
    raw?: Uint8Array;
  }

  interface Socket {
    /** Per-socket user data (Bun.listen shares its handlers between connections). */
    data?: unknown;
    /** Bytes accepted (possibly fewer than given: the rest must be written after `drain`); -1 if closed. */
    write(data: Uint8Array | string): number;
    /** Sends close_notify (TLS) and FIN; on TLS, reports the close only once the peer has closed too. */
    end(): void;
    /** Sends close_notify (TLS) and FIN, then closes without waiting for the peer (measured on 1.4.5). */
    shutdown(halfClose?: boolean): void;
    /** Closes at once. */
    terminate(): void;
    pause(): void;
    resume(): void;
    setNoDelay(enable?: boolean): boolean;
    /** Initial delay in seconds. */
    setKeepAlive(enable?: boolean, initialDelay?: number): boolean;
    /** Returns [raw, tls]: the raw socket keeps receiving the ciphertext; the TLS one the plaintext. */
    upgradeTLS(options: { tls: TLSOptions; socket: SocketHandler }): [Socket, Socket];
    getPeerCertificate(): PeerCertificate | undefined;
    getTLSVersion(): string | null;
    getCipher(): { name?: string; standardName?: string } | null;
    readonly alpnProtocol: string | false | null;
    readonly authorized: boolean;
    readonly remoteAddress: string;
    readonly remotePort?: number;
    readonly readyState: string | number;
  }

  interface SocketListener {
    readonly hostname: string;
    readonly port: number;
    stop(closeActiveConnections?: boolean): void;
  }

  interface DnsAddress {
    address: string;
    family: 4 | 6;
  }
}

declare const Bun: {
  readonly version: string;
  connect(options: {
    hostname?: string;
    port?: number;
    unix?: string;
    tls?: BunNative.TLSOptions;
    socket: BunNative.SocketHandler;
  }): Promise<BunNative.Socket>;
  listen(options: {
    hostname: string;
    port: number;
    backlog?: number;
    socket: BunNative.SocketHandler;
  }): BunNative.SocketListener;
  readonly dns: {
    lookup(host: string, options?: { family?: 0 | 4 | 6 }): Promise<BunNative.DnsAddress[]>;
  };
};
