export * from './certs.ts';
export * from './fake-server.ts';
export * from './postgres.ts';
