/**
 * Encryption-method selection, as libpq's init_allowed_encryption_methods / select_next_encryption_method
 * (fe-connect.c). pgconn has no GSSAPI, so GSS is never an allowed method: gssencmode=prefer behaves
 * as "no credential cache" and gssencmode=require fails before any connection.
 */
import { OptionError, UnsupportedError } from '../errors.ts';

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
export type SslNegotiation = 'postgres' | 'direct';
export type GssEncMode = 'disable' | 'prefer' | 'require';
export type EncryptionMethod = 'plaintext' | 'ssl';

export const SSL_MODES: readonly SslMode[] = [
  'disable',
  'allow',
  'prefer',
  'require',
  'verify-ca',
  'verify-full',
];

/** Modes that never fall back to plaintext. */
export const sslRequired = (mode: SslMode): boolean =>
  mode === 'require' || mode === 'verify-ca' || mode === 'verify-full';

/** Methods this connection may use, in the order they are tried. */
export function allowedEncryptionMethods(
  sslmode: SslMode,
  gssencmode: GssEncMode,
  isUnixSocket: boolean,
): EncryptionMethod[] {
  if (gssencmode === 'require') {
    throw new UnsupportedError(
      isUnixSocket
        ? 'GSSAPI encryption required but it is not supported over a local socket'
        : 'GSSAPI encryption is not supported by pgconn (gssencmode=require)',
    );
  }
  // libpq ignores sslmode on Unix sockets.
  if (isUnixSocket) return ['plaintext'];
  const methods: EncryptionMethod[] = [];
  const ssl = sslmode !== 'disable';
  const plain = sslmode === 'disable' || sslmode === 'allow' || sslmode === 'prefer';
  if (sslmode === 'allow') {
    methods.push('plaintext', 'ssl');
  } else {
    if (ssl) methods.push('ssl');
    if (plain) methods.push('plaintext');
  }
  if (methods.length === 0) throw new OptionError('no encryption method is possible with these options');
  return methods;
}
