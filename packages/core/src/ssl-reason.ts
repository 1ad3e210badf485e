/**
 * OpenSSL's reason string of a TLS failure ('tlsv1 alert protocol version', 'decryption failed or
 * bad record mac'…), which libpq and the server print after `SSL error: `. Node puts it in `reason`;
 * its message holds the whole error-queue line (`8034…:error:0A00042E:SSL routines:ssl3_read_bytes:…`).
 * Transports of other runtimes set `reason` the same way.
 */
export const sslReason = (e: Error): string | undefined => {
  const r = (e as { reason?: unknown }).reason;
  return typeof r === 'string' && r !== '' ? r : undefined;
};

/** PostgreSQL's log line for a TLS failure on a client connection (be_tls_read), or undefined. */
export const sslErrorLog = (e: Error): string | undefined => {
  const reason = sslReason(e);
  return reason ? `SSL error: ${reason}` : undefined;
};
