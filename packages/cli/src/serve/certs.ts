/**
 * `pgconn serve --tls-dir DIR`: a throwaway CA and a server certificate it signed, for demos and
 * tests. Keys are EC P-256 from node:crypto; the certificates come from the `openssl` command-line
 * tool (required for --tls-dir only), with our own configuration so the system openssl.cnf never
 * leaks in. The CA key lives in a private temporary directory and is deleted once the server
 * certificate is signed: nobody can issue anything else under that CA.
 *
 *   DIR/ca.crt      the CA certificate (sslrootcert for verify-ca / verify-full)
 *   DIR/server.crt  CN localhost, SANs DNS:localhost, IP:127.0.0.1, IP:::1
 *   DIR/server.key  its PKCS#8 key, mode 0600
 */
import { execFile } from 'node:child_process';
import { generateKeyPair, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const generate = promisify(generateKeyPair);

export interface GeneratedCerts {
  dir: string;
  ca: string;
  cert: string;
  key: string;
  certPem: string;
  keyPem: string;
}

const DAYS = '365';

const CONFIG = `[req]
distinguished_name = dn
utf8 = yes
string_mask = utf8only
[dn]
[ca_ext]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server_ext]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

async function openssl(args: string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args, { encoding: 'utf8' });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT')
      throw new Error('--tls-dir needs the openssl command-line tool, which was not found');
    throw new Error(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** A positive 64-bit serial in hex. */
const serial = (): string => {
  const b = randomBytes(8);
  b[0] = ((b[0] ?? 0) & 0x7f) | 0x10;
  return `0x${b.toString('hex')}`;
};

async function writePrivate(path: string, pem: string): Promise<void> {
  await writeFile(path, pem, { mode: 0o600 });
  // `mode` applies only when the file is created: an existing key file is tightened here.
  await chmod(path, 0o600);
}

/** Writes DIR/ca.crt, DIR/server.crt and DIR/server.key (replacing what was there). */
export async function generateCertificates(dir: string): Promise<GeneratedCerts> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const work = await mkdtemp(join(tmpdir(), 'pgconn-serve-ca-'));
  const ca = join(dir, 'ca.crt');
  const cert = join(dir, 'server.crt');
  const key = join(dir, 'server.key');
  try {
    const [caKey, serverKey] = await Promise.all([
      generate('ec', { namedCurve: 'P-256' }),
      generate('ec', { namedCurve: 'P-256' }),
    ]);
    const config = join(work, 'openssl.cnf');
    const caKeyPath = join(work, 'ca.key');
    const csr = join(work, 'server.csr');
    await writeFile(config, CONFIG);
    await writePrivate(caKeyPath, caKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    const keyPem = serverKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await writePrivate(key, keyPem);
    await openssl([
      'req',
      '-config',
      config,
      '-new',
      '-x509',
      '-key',
      caKeyPath,
      '-subj',
      '/O=pgconn serve/CN=pgconn serve throwaway CA',
      '-days',
      DAYS,
      '-sha256',
      '-set_serial',
      serial(),
      '-extensions',
      'ca_ext',
      '-out',
      ca,
    ]);
    await openssl(['req', '-config', config, '-new', '-key', key, '-subj', '/CN=localhost', '-out', csr]);
    await openssl([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca,
      '-CAkey',
      caKeyPath,
      '-set_serial',
      serial(),
      '-days',
      DAYS,
      '-sha256',
      '-extfile',
      config,
      '-extensions',
      'server_ext',
      '-out',
      cert,
    ]);
    return { dir, ca, cert, key, certPem: await readFile(cert, 'utf8'), keyPem };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
