/**
 * Loads the TLS files libpq's initialize_SSL would (reference §4.1) through the transport's file
 * access, applying libpq's rules: a missing root file is not an error here (verify-* fails later with
 * libpq's message), CRLs only count when a root file was loaded, a certificate without its key and a
 * key readable by group/world are errors.
 */
import { OptionError } from '../errors.ts';
import type { ResolvedOptions } from '../options/resolve.ts';
import type { Transport } from '../transport.ts';
import type { TlsMaterial } from './handshake.ts';

const text = new TextDecoder();
const isPem = (b: Uint8Array): boolean => text.decode(b.subarray(0, 64)).includes('-----BEGIN');

export async function loadTlsMaterial(transport: Transport, o: ResolvedOptions): Promise<TlsMaterial> {
  const m: TlsMaterial = {};
  if (o.sslmode === 'disable') return m;
  const files = o.tlsFiles;
  if (o.sslrootcert === 'system') {
    m.rootCert = 'system';
  } else if (files.rootCert !== undefined) {
    m.rootCertPath = files.rootCert;
    const root = await transport.readFile(files.rootCert);
    if (root) {
      m.rootCert = [text.decode(root)];
      const crl: string[] = [];
      // libpq hands sslcrl and sslcrldir together to X509_STORE_load_locations, which is all or
      // nothing: a missing or unreadable sslcrl file is ignored silently, and so is sslcrldir then.
      let crlLoaded = true;
      if (files.crl) {
        const c = await transport.readFile(files.crl).catch(() => null);
        if (c) crl.push(text.decode(c));
        else crlLoaded = false;
      }
      if (crlLoaded && files.crlDir) {
        for (const name of (await transport.listDir(files.crlDir).catch(() => null)) ?? []) {
          const c = await transport.readFile(`${files.crlDir}/${name}`).catch(() => null);
          if (c && isPem(c)) crl.push(text.decode(c));
        }
      }
      if (crl.length) m.crl = crl;
    }
  }
  if (files.cert !== undefined && o.sslcertmode !== 'disable') {
    const cert = await transport.readFile(files.cert);
    if (cert) {
      m.cert = isPem(cert) ? text.decode(cert) : cert;
      const keyPath = files.key;
      const info = keyPath ? await transport.fileInfo(keyPath) : null;
      if (!keyPath || !info) {
        throw new OptionError(`certificate present, but not private key file "${keyPath ?? ''}"`);
      }
      if (!info.isFile) throw new OptionError(`private key file "${keyPath}" is not a regular file`);
      // Owned by root: up to 0640; otherwise up to 0600 (fe-secure-openssl.c).
      const tooOpen = info.uid === 0 ? (info.mode & 0o137) !== 0 : (info.mode & 0o077) !== 0;
      if (info.uid !== -1 && tooOpen) {
        throw new OptionError(
          `private key file "${keyPath}" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root`,
        );
      }
      const key = await transport.readFile(keyPath);
      if (!key) throw new OptionError(`certificate present, but not private key file "${keyPath}"`);
      m.key = isPem(key) ? text.decode(key) : key;
    }
  }
  return m;
}
