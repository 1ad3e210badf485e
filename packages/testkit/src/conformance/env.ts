/**
 * What the conformance suite needs to know about its surroundings. The harness (on Node) starts the
 * servers and writes the certificates, then hands this over as JSON (environment variable
 * PGCONN_CONFORMANCE_ENV or `--env <json|@file>`), so every runtime runs against the same servers.
 */

export interface PgEndpoint {
  host: string;
  port: number;
  /** Directory of the server's Unix-domain socket. */
  socketDir: string;
}

export interface ConformanceEnv {
  /** PostgreSQL 15 and 18 with TLS (testkit's startTlsPostgres: TLS_USERS / TLS_HBA, localhost cert). */
  pg15: PgEndpoint;
  pg18: PgEndpoint;
  /** Password of scramuser. */
  password: string;
  /** Certificate and key files (PEM paths). */
  certs: {
    /** root+server_ca.crt: the client's sslrootcert. */
    rootServerCa: string;
    /** root+client_ca.crt: CAs for client certificates (our server side's ssl_ca_file). */
    rootClientCa: string;
    /** An unrelated CA (trusts nothing the servers present). */
    wrongCa: string;
    /** The servers' certificate (SANs localhost, 127.0.0.1, ::1) and its key. */
    serverCert: string;
    serverKey: string;
    /** CN=ssltestuser, signed by the client CA. */
    clientCert: string;
    clientKey: string;
    /** The same key, PKCS#8 PEM encrypted with `clientKeyPassphrase`. */
    clientKeyEncrypted: string;
    clientKeyPassphrase: string;
    /** CN=ssltestuser, revoked by the servers' CRL. */
    clientRevokedCert: string;
    clientRevokedKey: string;
  };
  /** Scripted fake servers (testkit's startFakeServer, on Node). */
  fake: {
    /** Answers SSLRequest with 'S' and an AuthenticationOk in the same write, then stalls. */
    sslJunk: { host: string; port: number };
    /** Answers SSLRequest with a v2 'E' error holding injected text, then stalls. */
    sslError: { host: string; port: number };
    /** Direct TLS that selects no ALPN protocol, then stalls. */
    directNoAlpn: { host: string; port: number };
    /** Accepts and never answers. */
    stall: { host: string; port: number };
    /** Trust: AuthenticationOk and ReadyForQuery; after the client's EOF keeps its side open 3 s. */
    linger: { host: string; port: number };
  };
  /** Run only the checks whose id starts with one of these. */
  only?: string[];
}

/** Reads the environment from `--env <json|@path>` or PGCONN_CONFORMANCE_ENV. */
export async function loadEnv(
  args: readonly string[],
  getenv: (name: string) => string | undefined,
  readText: (path: string) => Promise<string>,
): Promise<ConformanceEnv> {
  const i = args.indexOf('--env');
  let text = i >= 0 ? args[i + 1] : getenv('PGCONN_CONFORMANCE_ENV');
  if (!text) throw new Error('no environment: pass --env <json|@file> or set PGCONN_CONFORMANCE_ENV');
  if (text.startsWith('@')) text = await readText(text.slice(1));
  return JSON.parse(text) as ConformanceEnv;
}
