/**
 * Option resolution, libpq's conninfo_add_defaults + pqConnectOptions2 (fe-connect.c): merge the
 * explicit options, the service file, the environment and the compiled defaults, validate them with
 * libpq's error wording, and produce one target per host.
 *
 * Precedence: explicit (conninfo string, then `params`) > service file > environment > default.
 * Core reads no files and no environment: the caller passes the environment record, a reader (or
 * pre-read texts) for the service files and the password file, the home directory and the OS user.
 */
import type { HandshakeConfig, TlsMaterial } from '../client/handshake.ts';
import { parseRequireAuth, type RequireAuth } from '../client/require-auth.ts';
import type { GssEncMode, SslMode, SslNegotiation } from '../client/sslmode.ts';
import { PROTOCOL_3_0, PROTOCOL_3_2 } from '../codec/constants.ts';
import { OptionError } from '../errors.ts';
import type { TlsVersion } from '../transport.ts';
import { rejectNul } from './conninfo.ts';
import {
  DEFAULT_PGSOCKET_DIR,
  DEFAULT_PORT,
  DEFAULT_SYSCONFDIR,
  ENVIRONMENT_PARAMETERS,
  isCSpace,
  isKeyword,
  KEYWORDS,
} from './keywords.ts';
import {
  lookupPgpass,
  parsePgpass,
  pgpassNotPlainFileWarning,
  pgpassPermissionsOk,
  pgpassPermissionsWarning,
} from './pgpass.ts';
import { parseServiceFile } from './service.ts';
import { parseConnectionString } from './uri.ts';

export type ChannelBinding = 'disable' | 'prefer' | 'require';
export type SslCertMode = 'disable' | 'allow' | 'require';
export type TargetSessionAttrs =
  | 'any'
  | 'read-write'
  | 'read-only'
  | 'primary'
  | 'standby'
  | 'prefer-standby';
export type LoadBalanceHosts = 'disable' | 'random';
export type OptionSource = 'explicit' | 'service' | 'environment' | 'default';

/** A file the caller can read: a reader by path, or texts already read, keyed by path. */
export type FileSource = ((path: string) => string | null) | Readonly<Record<string, string>>;

/**
 * The password file as a reader found it: its text, and its st_mode when the reader knows it.
 * `isFile: false` (a directory, a device such as /dev/null) makes libpq warn and ignore the file.
 */
export interface PgpassFile {
  text: string;
  mode?: number;
  isFile?: boolean;
}

export interface ResolveInput {
  /** Keyword/value string or `postgres[ql]://` URI (told apart by the URI prefix). */
  conninfo?: string;
  /** Explicit keyword → value pairs (PQconnectdbParams); they override `conninfo`. Empty values are ignored. */
  params?: Readonly<Record<string, string | undefined>>;
  /** The process environment (PGHOST, PGUSER, ...); undefined entries are unset. */
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * Service files, by path: `servicefile`/PGSERVICEFILE, else `<homeDir>/.pg_service.conf`, then
   * `<PGSYSCONFDIR or sysconfDir>/pg_service.conf`. Return null for a file that does not exist.
   */
  serviceFileText?: FileSource;
  /**
   * The password file: its text (the contents of `passfile`/PGPASSFILE/`<homeDir>/.pgpass`, i.e. the
   * path reported in `passfile`), or a reader called with that path (not called when there is no
   * path: no passfile, PGPASSFILE or homeDir). Only consulted when no password is given. A reader
   * that stats the file can return its text with its st_mode (as libpq's passwordFromFile does):
   * one stat and one read, no second pass with `pgpassMode`.
   */
  pgpassText?: string | ((path: string) => string | PgpassFile | null);
  /** st_mode of the password file; with group/world bits set the file is ignored with a warning. */
  pgpassMode?: number;
  /** The user's home directory (HOME); used for ~/.pgpass, ~/.pg_service.conf and ~/.postgresql/. */
  homeDir?: string;
  /**
   * The OS user name, the default `user`; or a function that looks it up, called only when no
   * `user`/PGUSER/service gives one (on Node the lookup reads the password database).
   */
  currentUser?: string | (() => string | undefined);
  /** DEFAULT_PGSOCKET_DIR; `/tmp` when absent (Debian builds use `/var/run/postgresql`). '' means localhost. */
  defaultSocketDir?: string;
  /** Compiled SYSCONFDIR, overridden by PGSYSCONFDIR; `/usr/local/pgsql/etc` when absent. */
  sysconfDir?: string;
  /** Random source in [0, 1) for load_balance_hosts=random; Math.random when absent. */
  random?: () => number;
}

/** One host slot, libpq's pg_conn_host. */
export interface HostTarget {
  /** The host as given (name, IP, or socket directory); the default socket dir when none; '' when only hostaddr. */
  host: string;
  /** Numeric address to connect to instead of resolving `host`. */
  hostaddr?: string;
  port: number;
  /** This slot's element of the port list ('' when empty); pgpass matching compares it verbatim. */
  portText: string;
  isUnixSocket: boolean;
  /** `<dir>/.s.PGSQL.<port>` for a Unix socket (a leading `@` is Linux's abstract namespace). */
  socketPath?: string;
  /** The explicit password, or the one found in the password file for this host. */
  password?: string;
  /** The password came from the password file (for the `password retrieved from file` hint). */
  passwordFromFile: boolean;
}

/** TLS file paths with libpq's defaults applied; the caller loads them. */
export interface TlsFiles {
  /** `system`, a path, or `<homeDir>/.postgresql/root.crt`; absent without a home directory. */
  rootCert?: string;
  /** Client certificate; absent with sslcertmode=disable. */
  cert?: string;
  key?: string;
  /** `<homeDir>/.postgresql/root.crl` only when neither sslcrl nor sslcrldir is set. */
  crl?: string;
  crlDir?: string;
}

export interface ResolvedOptions {
  /** Every keyword that ended up with a value, after precedence (before derived values). */
  values: Readonly<Record<string, string>>;
  /** Where each of `values` came from. */
  sources: Readonly<Record<string, OptionSource>>;
  hosts: HostTarget[];
  user: string;
  dbname: string;
  /** The explicit password (conninfo, params, service, PGPASSWORD), if any. */
  password?: string;
  /** The password file that was (or would be) consulted. */
  passfile?: string;
  service?: string;
  /** The service file the service definition was read from. */
  serviceFile?: string;
  /** Seconds; 0 means no timeout (libpq also waits at least 2 s when it is 1). */
  connectTimeout: number;
  keepalives: boolean;
  keepalivesIdle?: number;
  keepalivesInterval?: number;
  keepalivesCount?: number;
  /** Milliseconds. */
  tcpUserTimeout?: number;
  clientEncoding?: string;
  options?: string;
  applicationName?: string;
  fallbackApplicationName?: string;
  replication?: string;
  /** Startup parameters from PGDATESTYLE, PGTZ, PGGEQO. */
  extraParameters: Array<[string, string]>;
  sslmode: SslMode;
  sslnegotiation: SslNegotiation;
  sslcertmode: SslCertMode;
  /** The sslrootcert setting as given ('system' or a path); see tlsFiles for the effective path. */
  sslrootcert?: string;
  sslpassword?: string;
  sslsni: boolean;
  sslMinProtocolVersion?: TlsVersion;
  sslMaxProtocolVersion?: TlsVersion;
  tlsFiles: TlsFiles;
  gssencmode: GssEncMode;
  channelBinding: ChannelBinding;
  requireAuth: RequireAuth;
  /** Not enforced by core (needs SO_PEERCRED on the socket). */
  requirepeer?: string;
  targetSessionAttrs: TargetSessionAttrs;
  loadBalanceHosts: LoadBalanceHosts;
  minProtocolVersion: number;
  maxProtocolVersion: number;
  /** libpq's stderr warnings (e.g. an insecure password file). */
  warnings: string[];
}

/** The password file's name in the home directory. */
const PGPASSFILE = '.pgpass';

/** Linux sun_path is 108 bytes (UNIXSOCK_PATH_BUFLEN), NUL included. */
const UNIXSOCK_PATH_BUFLEN = 108;
const utf8 = new TextEncoder();

const readFileSource = (source: FileSource | undefined, path: string): string | null => {
  if (source === undefined) return null;
  if (typeof source === 'function') return source(path);
  return Object.hasOwn(source, path) ? (source[path] ?? null) : null;
};

const joinPath = (dir: string, name: string): string =>
  dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`;

/** libpq's is_unixsock_path: an absolute path, or `@` (Linux abstract namespace). */
export const isUnixSocketPath = (host: string): boolean => host.startsWith('/') || host.startsWith('@');

/**
 * pqParseIntParam: strtol base 10 with surrounding whitespace allowed, int32 range.
 * Throws `invalid integer value "%s" for connection option "%s"`.
 */
export function parseIntOption(value: string, keyword: string): number {
  const fail = (): never => {
    throw new OptionError(`invalid integer value "${value}" for connection option "${keyword}"`);
  };
  let i = 0;
  while (i < value.length && isCSpace(value[i])) i++;
  let sign = 1;
  if (value[i] === '+' || value[i] === '-') {
    if (value[i] === '-') sign = -1;
    i++;
  }
  const digitsStart = i;
  while (i < value.length && value[i]! >= '0' && value[i]! <= '9') i++;
  if (i === digitsStart) fail();
  const digits = value.slice(digitsStart, i);
  while (i < value.length && isCSpace(value[i])) i++;
  if (i !== value.length) fail();
  const n = sign * Number(digits.length > 12 ? '99999999999999' : digits);
  if (n > 2147483647 || n < -2147483648) fail();
  return n === 0 ? 0 : n; // no -0
}

const oneOf = <T extends string>(keyword: string, value: string, allowed: readonly T[]): T => {
  if (!(allowed as readonly string[]).includes(value))
    throw new OptionError(`invalid ${keyword} value: "${value}"`);
  return value as T;
};

const TLS_VERSIONS: readonly TlsVersion[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/** sslVerifyProtocolVersion: case-insensitive TLSv1..TLSv1.3; '' or unset → undefined. */
function tlsVersion(keyword: string, value: string | undefined): TlsVersion | undefined {
  if (value === undefined || value === '') return undefined;
  const found = TLS_VERSIONS.find((v) => v.toLowerCase() === value.toLowerCase());
  if (!found) throw new OptionError(`invalid "${keyword}" value: "${value}"`);
  return found;
}

/** pqParseProtocolVersion: `latest` (3.2), `3.0` or `3.2`. */
function protocolVersionOption(keyword: string, value: string): number {
  if (value === 'latest' || value === '3.2') return PROTOCOL_3_2;
  if (value === '3.0') return PROTOCOL_3_0;
  throw new OptionError(`invalid ${keyword} value: "${value}"`);
}

const splitList = (s: string): string[] => s.split(',');

/** Looks the service up (parseServiceInfo); returns its options and the file they came from. */
function loadService(
  service: string,
  servicefile: string | undefined,
  input: ResolveInput,
  env: Readonly<Record<string, string | undefined>>,
): { values: Record<string, string>; file: string } {
  const source = input.serviceFileText;
  if (servicefile !== undefined) {
    const text = readFileSource(source, servicefile);
    if (text === null) throw new OptionError(`service file "${servicefile}" not found`);
    const values = parseServiceFile(text, service, servicefile);
    if (values) return { values, file: servicefile };
  } else if (input.homeDir !== undefined && input.homeDir !== '') {
    const path = joinPath(input.homeDir, '.pg_service.conf');
    const text = readFileSource(source, path);
    if (text !== null) {
      const values = parseServiceFile(text, service, path);
      if (values) return { values, file: path };
    }
  }
  const sysconf = env.PGSYSCONFDIR ?? input.sysconfDir ?? DEFAULT_SYSCONFDIR;
  const path = joinPath(sysconf, 'pg_service.conf');
  const text = readFileSource(source, path);
  if (text !== null) {
    const values = parseServiceFile(text, service, path);
    if (values) return { values, file: path };
  }
  throw new OptionError(`definition of service "${service}" not found`);
}

/** Resolves and validates connection options the way libpq does before it connects. */
export function resolveOptions(input: ResolveInput = {}): ResolvedOptions {
  const env = input.env ?? {};
  const values: Record<string, string> = {};
  const sources: Record<string, OptionSource> = {};
  const warnings: string[] = [];
  const set = (keyword: string, value: string, source: OptionSource): void => {
    values[keyword] = value;
    sources[keyword] = source;
  };

  // 1. Explicit settings.
  if (input.conninfo !== undefined) {
    for (const [keyword, value] of Object.entries(parseConnectionString(input.conninfo))) {
      set(keyword, value, 'explicit');
    }
  }
  if (input.params) {
    for (const [keyword, value] of Object.entries(input.params)) {
      if (value === undefined || value === '') continue;
      if (!isKeyword(keyword)) throw new OptionError(`invalid connection option "${keyword}"`);
      set(keyword, value, 'explicit');
    }
  }

  // 2. The service file fills what is not set explicitly.
  const service = values.service ?? env.PGSERVICE;
  let serviceFile: string | undefined;
  if (service !== undefined) {
    const found = loadService(service, values.servicefile ?? env.PGSERVICEFILE, input, env);
    serviceFile = found.file;
    for (const [keyword, value] of Object.entries(found.values)) {
      if (!Object.hasOwn(values, keyword)) set(keyword, value, 'service');
    }
  }

  // 3. Environment, then compiled defaults.
  let sslmodeDefaulted = false;
  for (const info of KEYWORDS) {
    const keyword = info.keyword;
    if (Object.hasOwn(values, keyword)) continue;
    const fromEnv = info.envVar === undefined ? undefined : env[info.envVar];
    if (fromEnv !== undefined) {
      set(keyword, fromEnv, 'environment');
      continue;
    }
    if (keyword === 'sslmode') {
      // Deprecated PGREQUIRESSL: a value starting with "1" means require; PGSSLMODE wins over it.
      if (env.PGREQUIRESSL?.startsWith('1')) {
        set(keyword, 'require', 'environment');
        continue;
      }
      sslmodeDefaulted = true;
    }
    if (info.defaultValue !== undefined) set(keyword, info.defaultValue, 'default');
  }
  // sslrootcert=system strengthens a defaulted sslmode.
  if (sslmodeDefaulted && values.sslrootcert === 'system') set('sslmode', 'verify-full', 'default');

  for (const [keyword, value] of Object.entries(values))
    rejectNul(value, `value of connection option "${keyword}"`);

  return finish(values, sources, { input, env, warnings, service, serviceFile });
}

interface FinishContext {
  input: ResolveInput;
  env: Readonly<Record<string, string | undefined>>;
  warnings: string[];
  service: string | undefined;
  serviceFile: string | undefined;
}

/** pqConnectOptions2: derived options and validation. */
function finish(
  values: Record<string, string>,
  sources: Record<string, OptionSource>,
  ctx: FinishContext,
): ResolvedOptions {
  const { input, env, warnings } = ctx;
  const nonEmpty = (keyword: string): string | undefined => {
    const v = values[keyword];
    return v === undefined || v === '' ? undefined : v;
  };
  const socketDir = input.defaultSocketDir ?? DEFAULT_PGSOCKET_DIR;

  // Host slots: hostaddr decides the count when given, else host, else one.
  const hostaddrs = nonEmpty('hostaddr') === undefined ? undefined : splitList(values.hostaddr!);
  const hostNames = nonEmpty('host') === undefined ? undefined : splitList(values.host!);
  const count = hostaddrs?.length ?? hostNames?.length ?? 1;
  if (hostaddrs && hostNames && hostNames.length !== count) {
    throw new OptionError(`could not match ${hostNames.length} host names to ${count} hostaddr values`);
  }
  // One port serves every host; otherwise there must be one per host.
  let portTexts: string[] = new Array<string>(count).fill('');
  if (nonEmpty('port') !== undefined) {
    const ports = splitList(values.port!);
    if (ports.length === 1) portTexts.fill(ports[0]!);
    else if (ports.length === count) portTexts = ports;
    else throw new OptionError(`could not match ${ports.length} port numbers to ${count} hosts`);
  }

  const hosts: HostTarget[] = [];
  for (let i = 0; i < count; i++) {
    const hostaddr = hostaddrs?.[i];
    let host = hostNames?.[i] ?? '';
    let isUnixSocket = false;
    if (hostaddr !== undefined && hostaddr !== '') {
      // Connect to the address; `host` only serves SNI, verification and pgpass.
    } else if (host !== '') {
      isUnixSocket = isUnixSocketPath(host);
    } else if (socketDir !== '') {
      host = socketDir;
      isUnixSocket = true;
    } else {
      host = 'localhost';
    }
    const portText = portTexts[i]!;
    let port = DEFAULT_PORT;
    if (portText !== '') {
      port = parseIntOption(portText, 'port');
      if (port < 1 || port > 65535) throw new OptionError(`invalid port number: "${portText}"`);
    }
    const target: HostTarget = { host, port, portText, isUnixSocket, passwordFromFile: false };
    if (hostaddr !== undefined && hostaddr !== '') target.hostaddr = hostaddr;
    if (isUnixSocket) {
      const socketPath = `${host}/.s.PGSQL.${port}`;
      if (utf8.encode(socketPath).length >= UNIXSOCK_PATH_BUFLEN) {
        throw new OptionError(
          `Unix-domain socket path "${socketPath}" is too long (maximum ${UNIXSOCK_PATH_BUFLEN - 1} bytes)`,
        );
      }
      target.socketPath = socketPath;
    }
    hosts.push(target);
  }

  // User and database.
  const user =
    nonEmpty('user') ?? (typeof input.currentUser === 'function' ? input.currentUser() : input.currentUser);
  if (user === undefined || user === '') {
    throw new OptionError(
      'could not determine the local user name: pass currentUser or set "user" or PGUSER',
    );
  }
  const dbname = nonEmpty('dbname') ?? user;

  // Password: explicit, else per host from the password file.
  const password = nonEmpty('password');
  let passfile = nonEmpty('passfile');
  if (passfile === undefined && input.homeDir !== undefined && input.homeDir !== '') {
    passfile = joinPath(input.homeDir, PGPASSFILE);
  }
  if (password !== undefined) {
    for (const target of hosts) target.password = password;
  } else if (input.pgpassText !== undefined) {
    // A reader needs a path; pre-read text is used as given (it is the file at `passfile`, if known).
    const reader = input.pgpassText;
    const read = typeof reader === 'function' ? (passfile === undefined ? null : reader(passfile)) : reader;
    const file: PgpassFile | null = typeof read === 'string' ? { text: read } : read;
    const mode = file?.mode ?? input.pgpassMode;
    // passwordFromFile: a file that is not a regular one, then one with group/world access.
    if (file?.isFile === false) {
      warnings.push(pgpassNotPlainFileWarning(passfile ?? PGPASSFILE));
    } else if (file && mode !== undefined && !pgpassPermissionsOk(mode)) {
      warnings.push(pgpassPermissionsWarning(passfile ?? PGPASSFILE));
    } else if (file) {
      const entries = parsePgpass(file.text);
      for (const target of hosts) {
        const found = lookupPgpass(entries, {
          host: target.host !== '' ? target.host : (target.hostaddr ?? ''),
          port: target.portText,
          dbname,
          user,
          defaultSocketDir: socketDir,
        });
        if (found !== undefined && found !== '') {
          target.password = found;
          target.passwordFromFile = true;
        }
      }
    }
  }

  const requireAuth = parseRequireAuth(values.require_auth);
  const channelBinding = oneOf<ChannelBinding>('channel_binding', values.channel_binding ?? 'prefer', [
    'disable',
    'prefer',
    'require',
  ]);
  const sslmode = oneOf<SslMode>('sslmode', values.sslmode ?? 'prefer', [
    'disable',
    'allow',
    'prefer',
    'require',
    'verify-ca',
    'verify-full',
  ]);
  const sslnegotiation = oneOf<SslNegotiation>('sslnegotiation', values.sslnegotiation ?? 'postgres', [
    'postgres',
    'direct',
  ]);
  if (values.sslrootcert === 'system' && sslmode !== 'verify-full') {
    throw new OptionError(
      `weak sslmode "${sslmode}" may not be used with sslrootcert=system (use "verify-full")`,
    );
  }
  if (
    sslnegotiation === 'direct' &&
    sslmode !== 'require' &&
    sslmode !== 'verify-ca' &&
    sslmode !== 'verify-full'
  ) {
    throw new OptionError(
      `weak sslmode "${sslmode}" may not be used with sslnegotiation=direct (use "require", "verify-ca", or "verify-full")`,
    );
  }
  const sslMinProtocolVersion = tlsVersion('ssl_min_protocol_version', values.ssl_min_protocol_version);
  const sslMaxProtocolVersion = tlsVersion('ssl_max_protocol_version', values.ssl_max_protocol_version);
  if (
    sslMinProtocolVersion !== undefined &&
    sslMaxProtocolVersion !== undefined &&
    TLS_VERSIONS.indexOf(sslMinProtocolVersion) > TLS_VERSIONS.indexOf(sslMaxProtocolVersion)
  ) {
    throw new OptionError('invalid SSL protocol version range');
  }
  const sslcertmode = oneOf<SslCertMode>('sslcertmode', values.sslcertmode ?? 'allow', [
    'disable',
    'allow',
    'require',
  ]);
  if (sslcertmode === 'require') {
    // libpq built without a certificate callback: it cannot tell whether a certificate was requested.
    throw new OptionError('sslcertmode value "require" is not supported (check OpenSSL version)');
  }
  const gssencmode = oneOf<GssEncMode>('gssencmode', values.gssencmode ?? 'disable', [
    'disable',
    'prefer',
    'require',
  ]);
  if (gssencmode === 'require') {
    throw new OptionError('gssencmode value "require" invalid when GSSAPI support is not compiled in');
  }
  const targetSessionAttrs = oneOf<TargetSessionAttrs>(
    'target_session_attrs',
    values.target_session_attrs ?? 'any',
    ['any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby'],
  );
  const loadBalanceHosts = oneOf<LoadBalanceHosts>(
    'load_balance_hosts',
    values.load_balance_hosts ?? 'disable',
    ['disable', 'random'],
  );
  if (loadBalanceHosts === 'random') {
    // Inside-out Fisher-Yates, as libpq.
    const random = input.random ?? Math.random;
    for (let i = 1; i < hosts.length; i++) {
      const j = Math.min(i, Math.floor(random() * (i + 1)));
      const tmp = hosts[j]!;
      hosts[j] = hosts[i]!;
      hosts[i] = tmp;
    }
  }

  const minProtocolVersion =
    values.min_protocol_version === undefined
      ? PROTOCOL_3_0
      : protocolVersionOption('min_protocol_version', values.min_protocol_version);
  const maxProtocolVersion =
    values.max_protocol_version === undefined
      ? // 3.0 keeps old servers and poolers working; a higher minimum implies the latest.
        minProtocolVersion > PROTOCOL_3_0
        ? PROTOCOL_3_2
        : PROTOCOL_3_0
      : protocolVersionOption('max_protocol_version', values.max_protocol_version);
  if (minProtocolVersion > maxProtocolVersion) {
    throw new OptionError('"min_protocol_version" is greater than "max_protocol_version"');
  }

  // Integer options (libpq checks these when it connects; the messages are the same).
  const intOption = (keyword: string): number | undefined => {
    const v = values[keyword];
    return v === undefined ? undefined : parseIntOption(v, keyword);
  };
  const connectTimeout = Math.max(0, intOption('connect_timeout') ?? 0);
  const keepalivesValue = intOption('keepalives');
  const keepalivesIdle = intOption('keepalives_idle');
  const keepalivesInterval = intOption('keepalives_interval');
  const keepalivesCount = intOption('keepalives_count');
  const tcpUserTimeout = intOption('tcp_user_timeout');

  // TLS files, with libpq's defaults under ~/.postgresql/.
  const home = input.homeDir !== undefined && input.homeDir !== '' ? input.homeDir : undefined;
  const inHome = (name: string): string | undefined =>
    home === undefined ? undefined : joinPath(joinPath(home, '.postgresql'), name);
  const tlsFiles: TlsFiles = {};
  const rootCert = nonEmpty('sslrootcert') ?? inHome('root.crt');
  if (rootCert !== undefined) tlsFiles.rootCert = rootCert;
  if (sslcertmode !== 'disable') {
    const cert = nonEmpty('sslcert') ?? inHome('postgresql.crt');
    const key = nonEmpty('sslkey') ?? inHome('postgresql.key');
    if (cert !== undefined) tlsFiles.cert = cert;
    if (key !== undefined) tlsFiles.key = key;
  }
  const crl = nonEmpty('sslcrl');
  const crlDir = nonEmpty('sslcrldir');
  if (crl !== undefined) tlsFiles.crl = crl;
  if (crlDir !== undefined) tlsFiles.crlDir = crlDir;
  if (crl === undefined && crlDir === undefined) {
    const defaultCrl = inHome('root.crl');
    if (defaultCrl !== undefined) tlsFiles.crl = defaultCrl;
  }

  const extraParameters: Array<[string, string]> = [];
  for (const [envVar, parameter] of ENVIRONMENT_PARAMETERS) {
    const v = env[envVar];
    if (v !== undefined && v.toLowerCase() !== 'default') extraParameters.push([parameter, v]);
  }

  let clientEncoding = nonEmpty('client_encoding');
  // "auto" means the locale's encoding; JavaScript strings are Unicode, so UTF8.
  if (clientEncoding === 'auto') clientEncoding = 'UTF8';

  const resolved: ResolvedOptions = {
    values,
    sources,
    hosts,
    user,
    dbname,
    connectTimeout,
    keepalives: keepalivesValue === undefined ? true : keepalivesValue !== 0,
    extraParameters,
    sslmode,
    sslnegotiation,
    sslcertmode,
    sslsni: (values.sslsni ?? '1').startsWith('1'),
    tlsFiles,
    gssencmode,
    channelBinding,
    requireAuth,
    targetSessionAttrs,
    loadBalanceHosts,
    minProtocolVersion,
    maxProtocolVersion,
    warnings,
  };
  const optional: Partial<ResolvedOptions> = {
    password,
    passfile,
    service: ctx.service,
    serviceFile: ctx.serviceFile,
    keepalivesIdle,
    keepalivesInterval,
    keepalivesCount,
    tcpUserTimeout,
    clientEncoding,
    options: nonEmpty('options'),
    applicationName: nonEmpty('application_name'),
    fallbackApplicationName: nonEmpty('fallback_application_name'),
    replication: nonEmpty('replication'),
    sslrootcert: nonEmpty('sslrootcert'),
    sslpassword: nonEmpty('sslpassword'),
    sslMinProtocolVersion,
    sslMaxProtocolVersion,
    requirepeer: nonEmpty('requirepeer'),
  };
  for (const [key, value] of Object.entries(optional)) {
    if (value !== undefined) (resolved as unknown as Record<string, unknown>)[key] = value;
  }
  return resolved;
}

/**
 * The HandshakeConfig for host slot `hostIndex`. `tls` is the material the caller loaded from
 * `resolved.tlsFiles` (root certificates, client cert/key, CRLs); version bounds, SNI, the key
 * passphrase and sslrootcert=system are filled in from the options (the caller's fields win).
 */
export function toHandshakeConfig(
  resolved: ResolvedOptions,
  hostIndex = 0,
  tls?: TlsMaterial,
): HandshakeConfig {
  const target = resolved.hosts[hostIndex];
  if (!target) throw new RangeError(`host index ${hostIndex} out of range (${resolved.hosts.length} hosts)`);
  const material: TlsMaterial = { sni: resolved.sslsni };
  if (resolved.sslrootcert === 'system') material.rootCert = 'system';
  else if (resolved.tlsFiles.rootCert !== undefined) material.rootCertPath = resolved.tlsFiles.rootCert;
  if (resolved.sslpassword !== undefined) material.passphrase = resolved.sslpassword;
  if (resolved.sslMinProtocolVersion !== undefined) material.minVersion = resolved.sslMinProtocolVersion;
  if (resolved.sslMaxProtocolVersion !== undefined) material.maxVersion = resolved.sslMaxProtocolVersion;
  Object.assign(material, tls);
  if (resolved.sslcertmode === 'disable') {
    delete material.cert;
    delete material.key;
  }
  const config: HandshakeConfig = {
    host: target.host,
    isUnixSocket: target.isUnixSocket,
    user: resolved.user,
    database: resolved.dbname,
    sslmode: resolved.sslmode,
    sslnegotiation: resolved.sslnegotiation,
    gssencmode: resolved.gssencmode,
    channelBinding: resolved.channelBinding,
    requireAuth: resolved.requireAuth,
    tls: material,
    minProtocolVersion: resolved.minProtocolVersion,
    maxProtocolVersion: resolved.maxProtocolVersion,
  };
  if (target.password !== undefined) config.password = target.password;
  if (resolved.applicationName !== undefined) config.applicationName = resolved.applicationName;
  if (resolved.fallbackApplicationName !== undefined)
    config.fallbackApplicationName = resolved.fallbackApplicationName;
  if (resolved.options !== undefined) config.options = resolved.options;
  if (resolved.clientEncoding !== undefined) config.clientEncoding = resolved.clientEncoding;
  if (resolved.replication !== undefined) config.replication = resolved.replication;
  if (resolved.extraParameters.length > 0) config.extraParameters = resolved.extraParameters;
  return config;
}

/** The `password retrieved from file` hint for a 28P01 failure on host slot `hostIndex`, if it applies. */
export function passwordFileHint(resolved: ResolvedOptions, hostIndex: number): string | undefined {
  const target = resolved.hosts[hostIndex];
  if (!target?.passwordFromFile) return undefined;
  return `password retrieved from file "${resolved.passfile ?? PGPASSFILE}"`;
}
