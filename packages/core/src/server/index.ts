/** The server side of connection startup: re-exported by the package index. */
export {
  type AuthPlan,
  type AuthProvider,
  type AuthRequest,
  NAMEDATALEN,
  PG_MAX_AUTH_TOKEN_LENGTH,
  PG_MAX_SASL_MESSAGE_LENGTH,
  type ServerAuthMethod,
  type ServerTlsInfo,
} from './auth.ts';
export {
  type ServerAction,
  type ServerAuthState,
  type ServerCloseReason,
  type ServerConnectionOptions,
  type ServerEvent,
  ServerHandshake,
  type ServerHandshakeConfig,
  type ServerSession,
  type ServerState,
  type ServerStep,
  type ServerTlsConfig,
} from './handshake.ts';
export {
  cleanAscii,
  DEFAULT_SERVER_VERSION,
  parseBool,
  reportedParameters,
  truncateName,
} from './parameters.ts';
