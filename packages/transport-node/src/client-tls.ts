/**
 * Client TLS on a connected socket: what tls.connect() sets up, minus its host-name check.
 *
 * tls.connect's 'secure' handler decodes the whole peer chain into objects (getPeerCertificate(true))
 * only to pass it to checkServerIdentity, which this transport disables because the core applies
 * libpq's host-name rules to the DER. That decoding cost ~0.35 ms per connection here, a quarter of
 * the client's TLS handshake (200 handshakes against a local Node TLS server, medians 1.36–1.44 ms
 * vs 1.02–1.07 ms). So the TLSSocket is built and started as tls.connect does it, and its 'secure'
 * handler is replaced by one that reads the chain verdict from the same place tls.connect reads it,
 * then emits 'secureConnect' as tls.connect does. Where Node lacks the internals this needs
 * (tls-internals.ts), tls.connect is used instead.
 */
import type * as net from 'node:net';
import * as tls from 'node:tls';
import { canStartClient, releaseControl, startClient, verifyError } from './tls-internals.ts';

/** tls.connect's default `minDHSize`: a smaller DHE group fails the handshake. */
const MIN_DH_SIZE = 1024;

const ownStart = canStartClient(tls.TLSSocket.prototype);

/** Starts client TLS on `socket`; the result emits 'secureConnect' with `authorized` set, or 'error'. */
export function startClientTls(socket: net.Socket, options: tls.ConnectionOptions): tls.TLSSocket {
  if (!ownStart) return tls.connect({ ...options, socket });
  const s = new tls.TLSSocket(socket, {
    isServer: false,
    requestCert: true,
    rejectUnauthorized: false,
    ...(options.secureContext ? { secureContext: options.secureContext } : {}),
    ...(options.ALPNProtocols ? { ALPNProtocols: options.ALPNProtocols } : {}),
  });
  releaseControl(s);
  s.prependListener('end', endBeforeSecure);
  s.once('secure', onSecure);
  startClient(s, options.servername);
  return s;
}

/** The peer closed before the handshake finished: the error tls.connect gives. */
function endBeforeSecure(this: tls.TLSSocket): void {
  const e = new Error('Client network socket disconnected before secure TLS connection was established');
  (e as Error & { code: string }).code = 'ECONNRESET';
  this.destroy(e);
}

/** tls.connect's onConnectSecure without checkServerIdentity. */
function onSecure(this: tls.TLSSocket): void {
  this.removeListener('end', endBeforeSecure);
  const ek = this.getEphemeralKeyInfo();
  if (ek && 'type' in ek && ek.type === 'DH' && (ek.size ?? 0) < MIN_DH_SIZE) {
    this.destroy(new Error(`DH parameter size ${ek.size} is less than ${MIN_DH_SIZE}`));
    return;
  }
  const error = verifyError(this);
  if (error) {
    this.authorized = false;
    this.authorizationError = (error.code ?? error.message) as unknown as Error;
  } else this.authorized = true;
  this.emit('secureConnect');
}
