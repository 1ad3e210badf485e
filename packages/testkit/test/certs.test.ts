import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CertSet,
  CLIENT_KEY_PASSPHRASE,
  createCertSet,
  type IssuedCert,
  SERVER_KEY_PASSPHRASE,
} from '../src/index.ts';

const execFileAsync = promisify(execFile);

/** `openssl …`, returning stdout + stderr and the exit code (verify reports failures on both). */
async function openssl(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await execFileAsync('openssl', args, { encoding: 'utf8' });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

const x509 = (c: IssuedCert) => new X509Certificate(c.certPem);
const cnOf = (c: IssuedCert) => /(?:^|\n)CN=(.*)/.exec(x509(c).subject)?.[1];
/** Node prints SANs as `DNS:a, IP Address:1.2.3.4`; IPv6 upper-case and fully expanded. */
const sansOf = (c: IssuedCert) => x509(c).subjectAltName?.split(', ') ?? [];

let certs: CertSet;
let elapsedMs = 0;

beforeAll(async () => {
  const t0 = performance.now();
  certs = await createCertSet();
  elapsedMs = performance.now() - t0;
  console.log(`createCertSet: ${elapsedMs.toFixed(0)} ms`);
}, 30_000);

afterAll(async () => {
  await certs?.remove();
});

describe('createCertSet', () => {
  it('is fast', () => {
    // ~0.7–1.4 s measured on this 2-core machine (the RSA-PSS key dominates); generous bound for load.
    expect(elapsedMs).toBeLessThan(6000);
  });

  it('builds the CA hierarchy', () => {
    const root = x509(certs.ca.root);
    expect(root.ca).toBe(true);
    expect(root.subject).toBe('CN=Test root CA for PostgreSQL SSL regression test suite');
    expect(root.checkIssued(root)).toBe(true);
    for (const ca of [certs.ca.server, certs.ca.client]) {
      expect(x509(ca).ca).toBe(true);
      expect(x509(ca).checkIssued(root)).toBe(true);
      expect(x509(ca).verify(root.publicKey)).toBe(true);
    }
    expect(x509(certs.ca.wrong).checkIssued(root)).toBe(false);
    expect(readFileSync(certs.bundles.rootServerCa, 'utf8')).toBe(
      certs.ca.root.certPem + certs.ca.server.certPem,
    );
    expect(readFileSync(certs.bundles.rootClientCa, 'utf8')).toBe(
      certs.ca.root.certPem + certs.ca.client.certPem,
    );
  });

  it('gives the server certificates the names of src/test/ssl', () => {
    const s = certs.server;
    const CN = 'common-name.pg-ssltest.test';
    const D1 = 'DNS:dns1.alt-name.pg-ssltest.test';
    const D2 = 'DNS:dns2.alt-name.pg-ssltest.test';
    const IP6 = 'IP Address:2001:DB8:0:0:0:0:0:1';
    const cases: Array<[IssuedCert, string | undefined, string[]]> = [
      [s.cnOnly, CN, []],
      [s.cnAndAltNames, CN, [D1, D2]],
      [s.cnAndIpAltNames, CN, ['IP Address:192.0.2.1', IP6]],
      [s.ipAltNames, undefined, ['IP Address:192.0.2.1', IP6]],
      [s.ipCnOnly, '192.0.2.1', []],
      [s.ipCnAndAltNames, '192.0.2.1', ['IP Address:192.0.2.2', IP6]],
      [s.ipCnAndDnsAltNames, '192.0.2.1', [D1, D2]],
      [s.ipInDnsname, undefined, ['DNS:192.0.2.1']],
      [s.singleAltName, undefined, ['DNS:single.alt-name.pg-ssltest.test']],
      [s.multipleAltNames, undefined, [D1, D2, 'DNS:*.wildcard.pg-ssltest.test']],
      [s.localhost, undefined, ['DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1']],
      [s.noNames, undefined, []],
      [s.revoked, CN, []],
      [s.sha384, CN, []],
    ];
    for (const [cert, cn, sans] of cases) {
      expect(cnOf(cert), cert.name).toBe(cn);
      expect(sansOf(cert), cert.name).toEqual(sans);
      expect(x509(cert).subject, cert.name).toContain('OU=PostgreSQL test suite');
      expect(x509(cert).ca, cert.name).toBe(false);
      expect(x509(cert).checkIssued(x509(certs.ca.server)), cert.name).toBe(true);
      expect(x509(cert).checkPrivateKey(createPrivateKey(cert.keyPem)), cert.name).toBe(true);
    }
  });

  it('chains every server certificate to root+server_ca, except the out-of-validity ones', async () => {
    const s = certs.server;
    const good = [
      s.cnOnly,
      s.cnAndAltNames,
      s.ipAltNames,
      s.multipleAltNames,
      s.localhost,
      s.noNames,
      s.sha384,
    ];
    const ok = await openssl('verify', '-CAfile', certs.bundles.rootServerCa, ...good.map((c) => c.cert));
    expect(ok.code, ok.out).toBe(0);
    const expired = await openssl('verify', '-CAfile', certs.bundles.rootServerCa, s.expired.cert);
    expect(expired.out).toContain('certificate has expired');
    const notYet = await openssl('verify', '-CAfile', certs.bundles.rootServerCa, s.notYetValid.cert);
    expect(notYet.out).toContain('certificate is not yet valid');
    const wrong = await openssl('verify', '-CAfile', certs.bundles.rootClientCa, s.localhost.cert);
    expect(wrong.code).not.toBe(0);
  });

  it('sets the validity windows', () => {
    const now = Date.now();
    const year = 365 * 86_400_000;
    const validity = (c: IssuedCert) => [Date.parse(x509(c).validFrom), Date.parse(x509(c).validTo)] as const;
    const [nb, na] = validity(certs.server.localhost);
    expect(nb).toBeLessThanOrEqual(now);
    expect(na).toBeGreaterThan(now + 20 * year);
    const [enb, ena] = validity(certs.server.expired);
    expect(ena).toBeLessThan(now - year / 2);
    expect(enb).toBeLessThan(ena);
    const [fnb] = validity(certs.server.notYetValid);
    expect(fnb).toBeGreaterThan(now + year / 2);
    expect(sansOf(certs.server.expired)).toContain('DNS:localhost');
  });

  it('uses the intended signature algorithms', async () => {
    const sigalg = async (c: IssuedCert) =>
      /Signature Algorithm: (\S+)/.exec((await openssl('x509', '-noout', '-text', '-in', c.cert)).out)?.[1];
    expect(await sigalg(certs.server.localhost)).toBe('ecdsa-with-SHA256');
    expect(await sigalg(certs.server.sha384)).toBe('ecdsa-with-SHA384');
    const pss = await openssl('x509', '-noout', '-text', '-in', certs.server.rsapss.cert);
    expect(pss.out).toMatch(/Signature Algorithm: rsassaPss/);
    expect(pss.out).toMatch(/Public Key Algorithm: rsassaPss/);
    expect(pss.out).toMatch(/Hash Algorithm: sha256/);
    expect(createPrivateKey(certs.server.rsapss.keyPem).asymmetricKeyType).toBe('rsa-pss');
    // Self-signed, like PostgreSQL's server-rsapss.
    expect(x509(certs.server.rsapss).checkIssued(x509(certs.server.rsapss))).toBe(true);
    expect(cnOf(certs.server.rsapss)).toBe('common-name.pg-ssltest.test');
  });

  it('writes keys 0600, in PEM and DER, and encrypted variants', () => {
    const all = [...Object.values(certs.server), ...Object.values(certs.client), ...Object.values(certs.ca)];
    for (const c of all) {
      expect(statSync(c.key).mode & 0o777, c.key).toBe(0o600);
      expect(statSync(c.keyDer).mode & 0o777, c.keyDer).toBe(0o600);
      const der = createPrivateKey({ key: readFileSync(c.keyDer), format: 'der', type: 'pkcs8' });
      expect(x509(c).checkPrivateKey(der), c.name).toBe(true);
    }
    const enc = [
      certs.serverKeys.cnOnlyPassword,
      certs.serverKeys.localhostPassword,
      certs.clientKeys.encryptedPem,
    ];
    for (const k of enc) {
      expect(statSync(k.path).mode & 0o777).toBe(0o600);
      expect(readFileSync(k.path, 'utf8')).toContain('BEGIN ENCRYPTED PRIVATE KEY');
      expect(() => createPrivateKey({ key: readFileSync(k.path), passphrase: 'wrong' })).toThrow();
    }
    const decrypt = (path: string, passphrase: string, format: 'pem' | 'der') =>
      createPrivateKey({ key: readFileSync(path), passphrase, format, type: 'pkcs8' });
    expect(
      x509(certs.server.cnOnly).checkPrivateKey(
        decrypt(certs.serverKeys.cnOnlyPassword.path, SERVER_KEY_PASSPHRASE, 'pem'),
      ),
    ).toBe(true);
    expect(
      x509(certs.server.localhost).checkPrivateKey(
        decrypt(certs.serverKeys.localhostPassword.path, SERVER_KEY_PASSPHRASE, 'pem'),
      ),
    ).toBe(true);
    const client = x509(certs.client.client);
    expect(
      client.checkPrivateKey(decrypt(certs.clientKeys.encryptedPem.path, CLIENT_KEY_PASSPHRASE, 'pem')),
    ).toBe(true);
    expect(
      client.checkPrivateKey(decrypt(certs.clientKeys.encryptedDer.path, CLIENT_KEY_PASSPHRASE, 'der')),
    ).toBe(true);
    expect(
      client.checkPrivateKey(
        createPrivateKey({ key: readFileSync(certs.clientKeys.der), format: 'der', type: 'pkcs8' }),
      ),
    ).toBe(true);
  });

  it('issues the client certificates', async () => {
    const c = certs.client;
    expect(x509(c.client).subject).toBe('CN=ssltestuser');
    expect(x509(c.client).checkIssued(x509(certs.ca.client))).toBe(true);
    // Node prints the DN in encoding order; PostgreSQL shows it as RFC 2253 (reversed).
    expect(x509(c.dn).subject.split('\n')).toEqual([
      'O=PGDG',
      'OU=Engineering',
      'OU=Testing',
      'CN=ssltestuser-dn',
    ]);
    const rfc2253 = await openssl('x509', '-noout', '-subject', '-nameopt', 'RFC2253', '-in', c.dn.cert);
    expect(rfc2253.out.trim()).toBe('subject=CN=ssltestuser-dn,OU=Testing,OU=Engineering,O=PGDG');
    expect(cnOf(c.revokedUtf8)).toBe('Οδυσσέας');
    expect(cnOf(c.long)).toHaveLength(64);
    const ext = await openssl(
      'x509',
      '-noout',
      '-ext',
      'basicConstraints,extendedKeyUsage',
      '-in',
      c.ext.cert,
    );
    expect(ext.out).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(ext.out).toContain('TLS Web Client Authentication');
    expect(x509(c.wrongCa).checkIssued(x509(certs.ca.wrong))).toBe(true);
    expect(x509(c.wrongCa).checkIssued(x509(certs.ca.client))).toBe(false);
    const chain = await openssl(
      'verify',
      '-CAfile',
      certs.bundles.rootClientCa,
      c.client.cert,
      c.dn.cert,
      c.ext.cert,
    );
    expect(chain.code, chain.out).toBe(0);
  });

  it('issues client certificates on demand, cached per CN and CA', async () => {
    const a = await certs.clientCert('certuser');
    expect(x509(a).subject).toBe('CN=certuser');
    expect(x509(a).checkIssued(x509(certs.ca.client))).toBe(true);
    expect(await certs.clientCert('certuser')).toBe(a);
    const w = await certs.clientCert('certuser', { ca: 'wrong' });
    expect(w).not.toBe(a);
    expect(x509(w).checkIssued(x509(certs.ca.wrong))).toBe(true);
    expect(statSync(a.key).mode & 0o777).toBe(0o600);
  });

  it('revokes through CRL files and hashed CRL directories', async () => {
    const crl = await openssl('crl', '-noout', '-text', '-in', certs.crl.client);
    expect(crl.out).toContain(`Serial Number: ${certs.client.revoked.serial}`);
    expect(crl.out).toContain(`Serial Number: ${certs.client.revokedUtf8.serial}`);
    expect(crl.out).not.toContain(`Serial Number: ${certs.client.client.serial}`);

    const verify = (ca: string, crlArgs: string[], ...files: string[]) =>
      openssl('verify', '-crl_check_all', '-CAfile', ca, ...crlArgs, ...files);
    const srvFile = await verify(
      certs.bundles.rootServerCa,
      ['-CRLfile', certs.crl.rootServer],
      certs.server.revoked.cert,
    );
    expect(srvFile.out).toContain('certificate revoked');
    const srvDir = await verify(
      certs.bundles.rootServerCa,
      ['-CApath', certs.crl.rootServerDir],
      certs.server.revoked.cert,
    );
    expect(srvDir.out).toContain('certificate revoked');
    const srvOk = await verify(
      certs.bundles.rootServerCa,
      ['-CApath', certs.crl.rootServerDir],
      certs.server.cnOnly.cert,
    );
    expect(srvOk.code, srvOk.out).toBe(0);
    const cliDir = await verify(
      certs.bundles.rootClientCa,
      ['-CApath', certs.crl.rootClientDir],
      certs.client.revoked.cert,
      certs.client.revokedUtf8.cert,
    );
    expect(cliDir.out.match(/certificate revoked/g)).toHaveLength(2);
    const cliOk = await verify(
      certs.bundles.rootClientCa,
      ['-CRLfile', certs.crl.rootClient],
      certs.client.client.cert,
    );
    expect(cliOk.code, cliOk.out).toBe(0);
  });
});
