/** Authentication building blocks: MD5, SCRAM-SHA-256(-PLUS), channel binding, SASLprep. */
export { certificateSignatureHash, type HashName, tlsServerEndPointHash } from './channel-binding.ts';
export { verifyCleartextPassword } from './cleartext.ts';
export { constantTimeEqual } from './constant-time.ts';
export { md5PasswordResponse, md5Verifier, verifyMd5Response } from './md5.ts';
export { pgSaslprep, type SaslprepOptions, saslprep } from './saslprep.ts';
export {
  type ChannelBinding,
  formatScramVerifier,
  mockVerifier,
  parseScramVerifier,
  SCRAM_DEFAULT_ITERATIONS,
  SCRAM_DEFAULT_MAX_ITERATIONS,
  SCRAM_DEFAULT_SALT_LENGTH,
  ScramClient,
  type ScramClientOptions,
  type ScramMechanism,
  ScramServer,
  type ScramServerOptions,
  type ScramVerifier,
  scramVerifier,
  verifyScramPlainPassword,
} from './scram.ts';
export { defaultScramKeyCache, ScramKeyCache, type ScramKeys } from './scram-key-cache.ts';
