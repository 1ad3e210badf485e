export * from './auth/index.ts';
export { ChunkQueue, type FlowControl } from './chunk-queue.ts';
export {
  type ConnectOptions as ClientConnectOptions,
  type ConnectStep,
  checkTarget,
  connect,
} from './client/connect.ts';
export {
  type AuthMethodUsed,
  type ChannelBindingMode,
  type ClientAction,
  type ClientEvent,
  ClientHandshake,
  type ClientState,
  type HandshakeConfig,
  type HandshakeResult,
  type HandshakeStep,
  type TlsMaterial,
} from './client/handshake.ts';
export { loadTlsMaterial } from './client/material.ts';
export {
  type AuthMethodName,
  checkRequireAuth,
  parseRequireAuth,
  REQUIRE_AUTH_ANY,
  type RequireAuth,
} from './client/require-auth.ts';
export {
  allowedEncryptionMethods,
  type EncryptionMethod,
  type GssEncMode,
  SSL_MODES,
  type SslMode,
  type SslNegotiation,
  sslRequired,
} from './client/sslmode.ts';
export {
  type CertificateNames,
  certificateNames,
  nameMatches,
  parseIPv4,
  parseIPv6,
  type SubjectAltName,
  verifyHostName,
} from './client/verify.ts';
export * from './codec/backend.ts';
export * from './codec/constants.ts';
export { decodeDataRowText } from './codec/datarow.ts';
export { type Frame, Framer, type FramerOptions } from './codec/framer.ts';
export * from './codec/frontend.ts';
export { BodyReader, decodeText } from './codec/reader.ts';
export * from './codec/startup.ts';
export { Writer } from './codec/writer.ts';
export { Connection, type NegotiateOptions, negotiate, type QueryResult } from './connection.ts';
export * from './errors.ts';
export {
  type ChannelBinding as ChannelBindingOption,
  DEFAULT_PGSOCKET_DIR,
  DEFAULT_PORT,
  type FileSource,
  formatConninfo,
  type HostTarget,
  isConnectionString,
  isKeyword,
  KEYWORDS,
  type KeywordInfo,
  keywordInfo,
  type LoadBalanceHosts,
  lookupPgpass,
  type OptionSource,
  type PgpassEntry,
  type PgpassFile,
  parseConnectionString,
  parseConninfo,
  parsePgpass,
  parseServiceFile,
  parseUri,
  passwordFileHint,
  pgpassPermissionsOk,
  type ResolvedOptions,
  type ResolveInput,
  resolveOptions,
  type SslCertMode,
  type TargetSessionAttrs,
  type TlsFiles,
  toHandshakeConfig,
} from './options/index.ts';
export * from './server/index.ts';
export { type AcceptOptions, acceptSession, ServerConnection } from './server-connection.ts';
export type * from './transport.ts';
