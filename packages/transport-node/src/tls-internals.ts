/**
 * The node:tls internals this transport relies on, in one place. tls.connect and tls.Server call them
 * on the sockets they make; for a TLSSocket made directly (server side around an accepted socket,
 * client side in client-tls.ts) we must make the same calls. Bun and Deno's node:tls have them too.
 */
import type * as tls from 'node:tls';

interface Internals {
  _start?: () => void;
  _releaseControl?: () => boolean;
  setServername?: (name: string) => void;
  _handle?: { verifyError?: () => (Error & { code?: string }) | null } | null;
}

const internals = (s: tls.TLSSocket): Internals => s as unknown as Internals;

/** Whether a client TLSSocket can be set up and started without tls.connect. */
export function canStartClient(proto: object): boolean {
  const p = proto as Internals;
  return (
    typeof p._start === 'function' &&
    typeof p._releaseControl === 'function' &&
    typeof p.setServername === 'function'
  );
}

/** SNI, then the ClientHello (what tls.connect does once the socket is connected). */
export function startClient(s: tls.TLSSocket, servername: string | undefined): void {
  if (servername) internals(s).setServername!(servername);
  internals(s)._start!();
}

/**
 * From here on a TLS failure on `s` (a forged record, an alert) is an 'error' event. Before it, Node
 * emits only the internal '_tlsError' for a failure after the handshake, and the connection stays
 * open: a server would sit on a peer whose records no longer decrypt.
 */
export function releaseControl(s: tls.TLSSocket): void {
  internals(s)._releaseControl?.();
}

/** The verdict OpenSSL recorded on the peer's chain (null: verified), read where Node reads it. */
export function verifyError(s: tls.TLSSocket): (Error & { code?: string }) | null {
  const handle = internals(s)._handle;
  return typeof handle?.verifyError === 'function' ? handle.verifyError() : new Error('no TLS handle');
}
