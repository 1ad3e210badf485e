export { BunListener } from './listener.ts';
export { BunSocket } from './socket.ts';
export { alpnWire } from './tls-options.ts';
export { BunTransport, bunTransport } from './transport.ts';
