export { connect, type DenoConnectOptions, resolveDenoOptions } from './connect.ts';
export { DenoListener } from './listener.ts';
export { DenoSocket } from './socket.ts';
export {
  CLIENT_CERT_UNVERIFIED,
  SERVER_CLIENT_CERT_UNSUPPORTED,
  serverTlsInfo,
  tlsConnectOptions,
  tlsInfoOf,
  tlsServerOptions,
} from './tls-options.ts';
export { DenoTransport, denoTransport } from './transport.ts';
