/**
 * Error normalisation. Deno's errors say `Connection refused (os error 111)`; libpq prints strerror's
 * text alone, so the suffix goes. Deno's node:tls (rustls underneath) gives TLS failures an OpenSSL-
 * style `code` (ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION) but no `reason`; the core reads `reason` to
 * print libpq's `SSL error: <reason>`, so it is derived from the code, as Node derives one from the other.
 */

const OS_ERROR = / \(os error \d+\)$/;

/** A Deno error as a plain Error with libpq-like text, keeping `code` and the original as `cause`. */
export function osError(e: unknown): Error {
  if (!(e instanceof Error)) return new Error(String(e));
  if (!OS_ERROR.test(e.message)) return e;
  const err = new Error(e.message.replace(OS_ERROR, ''), { cause: e });
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') (err as { code?: string }).code = code;
  return err;
}

/** Adds the OpenSSL reason Node would have reported, derived from the error code. */
export function tlsError(e: unknown): Error {
  const err = e instanceof Error ? e : new Error(String(e));
  const { code, reason } = err as { code?: unknown; reason?: unknown };
  if (typeof reason !== 'string' && typeof code === 'string' && code.startsWith('ERR_SSL_')) {
    (err as { reason?: string }).reason = code.slice('ERR_SSL_'.length).toLowerCase().replaceAll('_', ' ');
  }
  return err;
}

/**
 * A file that is not there (ENOENT, ENOTDIR): the core then applies libpq's "missing file" rules.
 * Anything else is thrown, in particular Deno's permission refusal (NotCapable, without --allow-read):
 * taking an unreadable root certificate or CRL for an absent one would silently weaken verification.
 */
export function isMissing(e: unknown): boolean {
  return e instanceof Error && (e.name === 'NotFound' || e.name === 'NotADirectory');
}

export function abortError(): Error {
  const e = new Error('connection attempt aborted');
  e.name = 'AbortError';
  return e;
}
