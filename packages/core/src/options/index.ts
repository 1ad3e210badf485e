/** Connection options: keyword/value strings, URIs, service and password files, resolution. */
export {
  formatConninfo,
  isConnectionString,
  parseConninfo,
  URI_PREFIXES,
  uriPrefixLength,
} from './conninfo.ts';
export {
  DEFAULT_PGSOCKET_DIR,
  DEFAULT_PORT,
  DEFAULT_SYSCONFDIR,
  ENVIRONMENT_PARAMETERS,
  isKeyword,
  KEYWORDS,
  type KeywordInfo,
  keywordInfo,
} from './keywords.ts';
export {
  lookupPgpass,
  type PgpassEntry,
  type PgpassKey,
  parsePgpass,
  passwordFromFileHint,
  pgpassNotPlainFileWarning,
  pgpassPermissionsOk,
  pgpassPermissionsWarning,
} from './pgpass.ts';
export {
  type ChannelBinding,
  type FileSource,
  type HostTarget,
  isUnixSocketPath,
  type LoadBalanceHosts,
  type OptionSource,
  type PgpassFile,
  parseIntOption,
  passwordFileHint,
  type ResolvedOptions,
  type ResolveInput,
  resolveOptions,
  type SslCertMode,
  type TargetSessionAttrs,
  type TlsFiles,
  toHandshakeConfig,
} from './resolve.ts';
export { parseServiceFile } from './service.ts';
export { parseConnectionString, parseUri, uriDecode } from './uri.ts';
