export * from './certs.ts';
export * from './fake-server.ts';
export * from './fault-proxy.ts';
export * from './postgres.ts';
