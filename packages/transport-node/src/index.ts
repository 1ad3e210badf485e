export { connect, type NodeConnectOptions, resolveNodeOptions } from './connect.ts';
export { NodeListener } from './listener.ts';
export { NodeSocket } from './socket.ts';
export { tlsConnectOptions, tlsInfoOf, tlsServerOptions } from './tls-options.ts';
export { NodeTransport, nodeTransport } from './transport.ts';
