export * from './certs.ts';
export * from './postgres.ts';
