export { connect, type NodeConnectOptions, resolveNodeOptions } from './connect.ts';
export { NodeSocket } from './socket.ts';
export { tlsConnectOptions, tlsInfoOf } from './tls-options.ts';
export { NodeTransport, nodeTransport } from './transport.ts';
