/**
 * The connection keywords, libpq's PQconninfoOptions[] (fe-connect.c): each keyword with its
 * environment variable and compiled-in default. Parsers reject any keyword not listed here with
 * libpq's `invalid connection option "%s"`.
 *
 * Defaults are those of a libpq built with SSL and without GSSAPI (pgconn has no GSSAPI), so
 * `gssencmode` defaults to `disable`.
 */

export interface KeywordInfo {
  readonly keyword: string;
  /** Environment variable consulted when neither the conninfo nor a service file sets it. */
  readonly envVar?: string;
  /** Compiled-in default (libpq's `compiled` column). */
  readonly defaultValue?: string;
  /** libpq's dispchar: '*' hides the value (passwords), 'D' marks a debug option. */
  readonly display: '' | '*' | 'D';
  /** false: libpq knows the keyword, pgconn parses and keeps it but does not act on it. */
  readonly honoured: boolean;
  readonly label: string;
}

const k = (
  keyword: string,
  envVar: string | undefined,
  defaultValue: string | undefined,
  label: string,
  display: '' | '*' | 'D' = '',
  honoured = true,
): KeywordInfo => ({
  keyword,
  ...(envVar === undefined ? {} : { envVar }),
  ...(defaultValue === undefined ? {} : { defaultValue }),
  display,
  honoured,
  label,
});

/** Default TCP port (DEF_PGPORT). */
export const DEFAULT_PORT = 5432;

/**
 * Default Unix-socket directory (DEFAULT_PGSOCKET_DIR). Upstream builds use `/tmp`; Debian and its
 * derivatives build libpq with `/var/run/postgresql`. pgconn uses `/tmp` unless the caller passes
 * `defaultSocketDir` to resolveOptions (or sets PGHOST / host).
 */
export const DEFAULT_PGSOCKET_DIR = '/tmp';

/** Compiled SYSCONFDIR of an upstream build (`$prefix/etc`), where `pg_service.conf` is looked up. */
export const DEFAULT_SYSCONFDIR = '/usr/local/pgsql/etc';

/** In PQconninfoOptions[] order (the order libpq fills defaults in). */
export const KEYWORDS: readonly KeywordInfo[] = [
  k('service', 'PGSERVICE', undefined, 'Database-Service'),
  k('servicefile', 'PGSERVICEFILE', undefined, 'Database-Service-File'),
  k('user', 'PGUSER', undefined, 'Database-User'),
  k('password', 'PGPASSWORD', undefined, 'Database-Password', '*'),
  k('passfile', 'PGPASSFILE', undefined, 'Database-Password-File'),
  k('channel_binding', 'PGCHANNELBINDING', 'prefer', 'Channel-Binding'),
  k('connect_timeout', 'PGCONNECT_TIMEOUT', undefined, 'Connect-timeout'),
  k('dbname', 'PGDATABASE', undefined, 'Database-Name'),
  k('host', 'PGHOST', undefined, 'Database-Host'),
  k('hostaddr', 'PGHOSTADDR', undefined, 'Database-Host-IP-Address'),
  k('port', 'PGPORT', String(DEFAULT_PORT), 'Database-Port'),
  k('client_encoding', 'PGCLIENTENCODING', undefined, 'Client-Encoding'),
  k('options', 'PGOPTIONS', '', 'Backend-Options'),
  k('application_name', 'PGAPPNAME', undefined, 'Application-Name'),
  k('fallback_application_name', undefined, undefined, 'Fallback-Application-Name'),
  k('keepalives', undefined, undefined, 'TCP-Keepalives'),
  k('keepalives_idle', undefined, undefined, 'TCP-Keepalives-Idle'),
  k('keepalives_interval', undefined, undefined, 'TCP-Keepalives-Interval'),
  k('keepalives_count', undefined, undefined, 'TCP-Keepalives-Count'),
  k('tcp_user_timeout', undefined, undefined, 'TCP-User-Timeout'),
  k('sslmode', 'PGSSLMODE', 'prefer', 'SSL-Mode'),
  k('sslnegotiation', 'PGSSLNEGOTIATION', 'postgres', 'SSL-Negotiation'),
  k('sslcompression', 'PGSSLCOMPRESSION', '0', 'SSL-Compression'),
  k('sslcert', 'PGSSLCERT', undefined, 'SSL-Client-Cert'),
  k('sslkey', 'PGSSLKEY', undefined, 'SSL-Client-Key'),
  k('sslcertmode', 'PGSSLCERTMODE', 'allow', 'SSL-Client-Cert-Mode'),
  k('sslpassword', undefined, undefined, 'SSL-Client-Key-Password', '*'),
  k('sslrootcert', 'PGSSLROOTCERT', undefined, 'SSL-Root-Certificate'),
  k('sslcrl', 'PGSSLCRL', undefined, 'SSL-Revocation-List'),
  k('sslcrldir', 'PGSSLCRLDIR', undefined, 'SSL-Revocation-List-Dir'),
  k('sslsni', 'PGSSLSNI', '1', 'SSL-SNI'),
  // Needs SO_PEERCRED on the Unix socket; kept, not enforced by core.
  k('requirepeer', 'PGREQUIREPEER', undefined, 'Require-Peer', '', false),
  k('require_auth', 'PGREQUIREAUTH', undefined, 'Require-Auth'),
  k('min_protocol_version', 'PGMINPROTOCOLVERSION', undefined, 'Min-Protocol-Version'),
  k('max_protocol_version', 'PGMAXPROTOCOLVERSION', undefined, 'Max-Protocol-Version'),
  k('ssl_min_protocol_version', 'PGSSLMINPROTOCOLVERSION', 'TLSv1.2', 'SSL-Minimum-Protocol-Version'),
  k('ssl_max_protocol_version', 'PGSSLMAXPROTOCOLVERSION', undefined, 'SSL-Maximum-Protocol-Version'),
  k('gssencmode', 'PGGSSENCMODE', 'disable', 'GSSENC-Mode'),
  k('krbsrvname', 'PGKRBSRVNAME', 'postgres', 'Kerberos-service-name', '', false),
  k('gsslib', 'PGGSSLIB', undefined, 'GSS-library', '', false),
  k('gssdelegation', 'PGGSSDELEGATION', '0', 'GSS-delegation', '', false),
  k('replication', undefined, undefined, 'Replication', 'D'),
  k('target_session_attrs', 'PGTARGETSESSIONATTRS', 'any', 'Target-Session-Attrs'),
  k('load_balance_hosts', 'PGLOADBALANCEHOSTS', 'disable', 'Load-Balance-Hosts'),
  // Debug options and OAuth (PG18): libpq accepts them, pgconn keeps them but does not use them.
  k('scram_client_key', undefined, undefined, 'SCRAM-Client-Key', 'D', false),
  k('scram_server_key', undefined, undefined, 'SCRAM-Server-Key', 'D', false),
  k('sslkeylogfile', undefined, undefined, 'SSL-Key-Log-File', 'D', false),
  k('oauth_issuer', undefined, undefined, 'OAuth-Issuer', '', false),
  k('oauth_client_id', undefined, undefined, 'OAuth-Client-ID', '', false),
  k('oauth_client_secret', undefined, undefined, 'OAuth-Client-Secret', '*', false),
  k('oauth_scope', undefined, undefined, 'OAuth-Scope', '', false),
  k('oauth_ca_file', 'PGOAUTHCAFILE', undefined, 'OAuth-CA-File', '', false),
];

const BY_NAME: ReadonlyMap<string, KeywordInfo> = new Map(KEYWORDS.map((info) => [info.keyword, info]));

export const keywordInfo = (keyword: string): KeywordInfo | undefined => BY_NAME.get(keyword);

export const isKeyword = (keyword: string): boolean => BY_NAME.has(keyword);

/** Startup-packet parameters libpq takes from the environment (EnvironmentOptions[]). */
export const ENVIRONMENT_PARAMETERS: ReadonlyArray<readonly [envVar: string, parameter: string]> = [
  ['PGDATESTYLE', 'datestyle'],
  ['PGTZ', 'timezone'],
  ['PGGEQO', 'geqo'],
];

/** C-locale isspace(): space, \t, \n, \v, \f, \r. */
export const isCSpace = (c: string | undefined): boolean =>
  c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
