/**
 * Certificate factory: the src/test/ssl certificate set of PostgreSQL (reference §10.2), generated
 * at test time into a temporary directory.
 *
 * Keys come from node:crypto (instant for EC P-256, and it writes encrypted PKCS#8 in PEM and DER);
 * certificates and CRLs come from the `openssl` CLI, because it can do everything we need (RSA-PSS,
 * arbitrary validity windows, CRLs, subject hashes) with no extra dependency. @peculiar/x509 was the
 * alternative, but it needs a global Reflect-metadata polyfill that is not installed.
 *
 * File names follow PostgreSQL's (`server-cn-only.crt`, `root+server_ca.crt`, …) so cases in §10.2
 * map one to one. Keys are EC P-256 except `server-rsapss` (the RSA-PSS key is the point there).
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, generateKeyPair, type KeyObject, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** A private key on disk: PKCS#8 PEM (`key`, mode 0600) and the same key as DER (`keyDer`). */
export interface KeyFiles {
  /** Path of the unencrypted PKCS#8 PEM key (mode 0600). */
  key: string;
  keyPem: string;
  /** Path of the same key, unencrypted PKCS#8 DER (mode 0600). */
  keyDer: string;
}

/** A certificate with its private key. */
export interface IssuedCert extends KeyFiles {
  /** File stem, e.g. `server-cn-only`. */
  name: string;
  /** Path of the PEM certificate. */
  cert: string;
  certPem: string;
  /** Serial number, upper-case hex without leading `0x` (as `openssl x509 -serial` prints it). */
  serial: string;
  /** Subject in OpenSSL's `-subj` form, e.g. `/OU=PostgreSQL test suite/CN=common-name.pg-ssltest.test`. */
  subject: string;
}

/** An encrypted copy of a private key. */
export interface EncryptedKey {
  /** Path (mode 0600). */
  path: string;
  passphrase: string;
  format: 'pem' | 'der';
  /** Cipher used for PKCS#8 PBES2 encryption. */
  cipher: string;
}

export interface ClientCertOptions {
  /** Which CA signs it: the client CA (default) or the unrelated "wrong" CA. */
  ca?: 'client' | 'wrong';
}

export interface CertSet {
  dir: string;
  ca: {
    /** Self-signed root: `CN=Test root CA for PostgreSQL SSL regression test suite`. */
    root: IssuedCert;
    /** Intermediate signed by root; signs the server certificates. */
    server: IssuedCert;
    /** Intermediate signed by root; signs the client certificates. */
    client: IssuedCert;
    /** Unrelated self-signed CA; trusts nothing of the above. */
    wrong: IssuedCert;
  };
  /** Concatenated PEM files, named as in src/test/ssl. */
  bundles: {
    /** `root+server_ca.crt`: the client's sslrootcert. */
    rootServerCa: string;
    /** `root+client_ca.crt`: the server's ssl_ca_file. */
    rootClientCa: string;
    /** `both-cas-1.crt`: root, server_ca, client_ca. */
    bothCas1: string;
    /** `both-cas-2.crt`: root, client_ca, server_ca. */
    bothCas2: string;
    /** `client+client_ca.crt`: client leaf + intermediate (client chain). */
    clientChain: string;
    /** `server-cn-only+server_ca.crt`: server chain. */
    serverCnOnlyChain: string;
    /** `server-localhost-alt-names+server_ca.crt`: server chain of the default cert. */
    serverLocalhostChain: string;
  };
  /** Server certificates, all signed by the server CA except `rsapss` (self-signed, as in PostgreSQL). */
  server: {
    /** CN common-name.pg-ssltest.test, no SANs. */
    cnOnly: IssuedCert;
    /** CN common-name…, DNS dns1.alt-name…, dns2.alt-name…. */
    cnAndAltNames: IssuedCert;
    /** CN common-name…, IP 192.0.2.1, IP 2001:DB8::1. */
    cnAndIpAltNames: IssuedCert;
    /** No CN; IP 192.0.2.1, IP 2001:DB8::1. */
    ipAltNames: IssuedCert;
    /** CN 192.0.2.1, no SANs. */
    ipCnOnly: IssuedCert;
    /** CN 192.0.2.1; IP 192.0.2.2, IP 2001:DB8::1. */
    ipCnAndAltNames: IssuedCert;
    /** CN 192.0.2.1; DNS dns1…, dns2…. */
    ipCnAndDnsAltNames: IssuedCert;
    /** No CN; DNS "192.0.2.1". */
    ipInDnsname: IssuedCert;
    /** No CN; DNS single.alt-name.pg-ssltest.test. */
    singleAltName: IssuedCert;
    /** No CN; DNS dns1…, dns2…, *.wildcard.pg-ssltest.test. */
    multipleAltNames: IssuedCert;
    /** No CN; DNS localhost, IP 127.0.0.1, IP ::1. The default server certificate. */
    localhost: IssuedCert;
    /** Neither CN nor SANs (OU only). */
    noNames: IssuedCert;
    /** CN common-name…; revoked in `crl.server`. */
    revoked: IssuedCert;
    /** CN common-name…; self-signed with an RSA-PSS key (id-RSASSA-PSS), signature RSASSA-PSS. */
    rsapss: IssuedCert;
    /** CN common-name…; ECDSA-with-SHA384 signature (tls-server-end-point hash selection). */
    sha384: IssuedCert;
    /** CN common-name…, SANs as `localhost`; validity ended a year ago. */
    expired: IssuedCert;
    /** CN common-name…, SANs as `localhost`; validity starts in a year. */
    notYetValid: IssuedCert;
  };
  serverKeys: {
    /** `server-password.key`: the server-cn-only key, encrypted (aes-256-cbc), passphrase `secret1`. */
    cnOnlyPassword: EncryptedKey;
    /** The localhost server key, encrypted the same way (for ssl_passphrase_command on the default cert). */
    localhostPassword: EncryptedKey;
  };
  /** Client certificates, signed by the client CA unless stated otherwise. */
  client: {
    /** CN=ssltestuser. */
    client: IssuedCert;
    /** O=PGDG, OU=Engineering, OU=Testing, CN=ssltestuser-dn. */
    dn: IssuedCert;
    /** CN=ssltestuser; revoked in `crl.client`. */
    revoked: IssuedCert;
    /** CN=Οδυσσέας; revoked in `crl.client`. */
    revokedUtf8: IssuedCert;
    /** CN=ssltestuser with basicConstraints=critical,CA:false and extendedKeyUsage=clientAuth. */
    ext: IssuedCert;
    /** 64-character CN plus OU and O (log truncation). */
    long: IssuedCert;
    /** CN=ssltestuser signed by the wrong CA. */
    wrongCa: IssuedCert;
  };
  /** Variants of the `client` key. */
  clientKeys: {
    /** `client-der.key`: unencrypted PKCS#8 DER. */
    der: string;
    /** `client-encrypted-pem.key`: PKCS#8 PEM, aes-128-cbc, passphrase `dUmmyP^#+`. */
    encryptedPem: EncryptedKey;
    /** `client-encrypted-der.key`: PKCS#8 DER, aes-128-cbc, passphrase `dUmmyP^#+`. */
    encryptedDer: EncryptedKey;
  };
  /** CRLs (PEM) and hashed CRL directories (`<subject-hash>.r0`, what `openssl rehash` would produce). */
  crl: {
    /** server_ca's CRL: revokes server-revoked. */
    server: string;
    /** client_ca's CRL: revokes client-revoked and client-revoked-utf8. */
    client: string;
    /** root's CRL: revokes nothing. */
    root: string;
    /** `root+server.crl`: OpenSSL's CRL_CHECK_ALL needs a CRL for every CA of the chain. */
    rootServer: string;
    /** `root+client.crl`. */
    rootClient: string;
    serverDir: string;
    clientDir: string;
    rootServerDir: string;
    rootClientDir: string;
  };
  /** Issues (once per CN and CA; cached) a client certificate with the given CN, e.g. a role name for `cert` auth. */
  clientCert(cn: string, opts?: ClientCertOptions): Promise<IssuedCert>;
  /** Deletes the directory. */
  remove(): Promise<void>;
}

export const SERVER_KEY_PASSPHRASE = 'secret1';
export const CLIENT_KEY_PASSPHRASE = 'dUmmyP^#+';

const OU = 'PostgreSQL test suite';
const CN_NAME = 'common-name.pg-ssltest.test';
const DNS1 = 'dns1.alt-name.pg-ssltest.test';
const DNS2 = 'dns2.alt-name.pg-ssltest.test';
const LOCALHOST_SANS = ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1'];
const DAY = 86_400_000;

type ExtSection = 'ca_ext' | 'leaf_ext' | 'client_ext';

// Leaves get SKI/AKI so that they are X.509 v3 (rustls, i.e. Deno, rejects v1 certificates).
const EXT_SECTIONS: Record<ExtSection, readonly string[]> = {
  ca_ext: [
    'basicConstraints = critical, CA:true',
    'keyUsage = critical, keyCertSign, cRLSign',
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid:always',
  ],
  leaf_ext: ['subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid'],
  client_ext: [
    'basicConstraints = critical, CA:false',
    'extendedKeyUsage = clientAuth',
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
  ],
};

// One config for every `openssl req`: our own, so the system openssl.cnf (whose [req] adds CA
// extensions to -x509 output) never leaks in. SANs are added per call with -addext.
const REQ_CNF = `[req]\ndistinguished_name = dn\nutf8 = yes\nstring_mask = utf8only\n[dn]\n${Object.entries(
  EXT_SECTIONS,
)
  .map(([name, lines]) => `[${name}]\n${lines.join('\n')}\n`)
  .join('')}`;

interface CrlFile {
  path: string;
  pem: string;
  hash: string;
}

type Subject = ReadonlyArray<readonly [attr: string, value: string]>;
interface IssueSpec {
  name: string;
  subject: Subject;
  /** Omitted: self-signed. */
  issuer?: IssuedCert;
  ext: ExtSection;
  /** `DNS:…` / `IP:…` entries. */
  sans?: readonly string[];
  md?: 'sha256' | 'sha384';
  keyType?: 'ec' | 'rsa-pss';
  /** Explicit validity; otherwise now + 10000 days. */
  validity?: { notBefore: Date; notAfter: Date };
}

/** Runs `openssl` and returns stdout; errors carry stderr. */
async function openssl(args: readonly string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync('openssl', [...args], { cwd, encoding: 'utf8' });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
  }
}

function subjectArg(subject: Subject): string {
  // `openssl -subj` uses / as separator and + for multi-valued RDNs; backslash escapes both.
  return subject.map(([k, v]) => `/${k}=${v.replace(/[\\/+=]/g, (c) => `\\${c}`)}`).join('');
}

function randomSerial(): string {
  const b = randomBytes(8);
  // Positive and with a non-zero first byte, so the DER INTEGER is exactly 8 bytes and prints as 16 hex digits.
  b[0] = ((b[0] ?? 0) & 0x7f) | 0x10;
  return b.toString('hex').toUpperCase();
}

/** `openssl ca` dates: GeneralizedTime YYYYMMDDHHMMSSZ. */
function genTime(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

/** index.txt dates: UTCTime YYMMDDHHMMSSZ. */
function utcTime(d: Date): string {
  return genTime(d).slice(2);
}

async function newKey(type: 'ec' | 'rsa-pss'): Promise<KeyObject> {
  const gen = promisify(generateKeyPair);
  if (type === 'ec') return (await gen('ec', { namedCurve: 'P-256' })).privateKey;
  // No PSS parameter restrictions, like `openssl genpkey -algorithm rsa-pss` in PostgreSQL's suite.
  return (await gen('rsa-pss', { modulusLength: 2048 })).privateKey;
}

async function writePrivate(path: string, data: string | Buffer): Promise<void> {
  // mode applies only on creation; every path here is fresh.
  await writeFile(path, data, { mode: 0o600 });
}

async function writeKeyFiles(dir: string, name: string, key: KeyObject): Promise<KeyFiles> {
  const keyPem = key.export({ type: 'pkcs8', format: 'pem' }).toString();
  const path = join(dir, `${name}.key`);
  const derPath = join(dir, `${name}-der.key`);
  await writePrivate(path, keyPem);
  await writePrivate(derPath, key.export({ type: 'pkcs8', format: 'der' }));
  return { key: path, keyPem, keyDer: derPath };
}

/** Whether each passphrase fails to open the encrypted PKCS#8 key with OpenSSL's "bad decrypt". */
function badDecryptFor(data: string | Buffer, format: 'pem' | 'der', passphrases: string[]): boolean {
  return passphrases.every((passphrase) => {
    try {
      createPrivateKey(
        format === 'pem' ? { key: data, passphrase } : { key: data, format, type: 'pkcs8', passphrase },
      );
      return false;
    } catch (e) {
      return /bad decrypt/.test(String((e as Error).message));
    }
  });
}

async function writeEncryptedKey(
  path: string,
  keyPem: string,
  format: 'pem' | 'der',
  passphrase: string,
  cipher: string,
): Promise<EncryptedKey> {
  const key = createPrivateKey(keyPem);
  const encrypt = () =>
    format === 'pem'
      ? key.export({ type: 'pkcs8', format: 'pem', cipher, passphrase })
      : key.export({ type: 'pkcs8', format: 'der', cipher, passphrase });
  // CBC padding rejects a wrong passphrase 255 times in 256; the 256th decrypts to garbage and fails
  // with another error. Tests expect libpq's "bad decrypt" for the wrong passphrases they use, so
  // draw a new salt and IV until those get it.
  let data = encrypt();
  for (let tries = 1; tries < 32 && !badDecryptFor(data, format, ['wrong', '']); tries++) data = encrypt();
  await writePrivate(path, data);
  return { path, passphrase, format, cipher };
}

class Factory {
  readonly reqCnf: string;
  private seq = 0;

  constructor(readonly dir: string) {
    this.reqCnf = join(dir, 'openssl-req.cnf');
  }

  async init(): Promise<void> {
    await writeFile(this.reqCnf, REQ_CNF);
  }

  async issue(spec: IssueSpec): Promise<IssuedCert> {
    const key = await newKey(spec.keyType ?? 'ec');
    const files = await writeKeyFiles(this.dir, spec.name, key);
    const cert = join(this.dir, `${spec.name}.crt`);
    const serial = randomSerial();
    const subject = subjectArg(spec.subject);
    const md = spec.md ?? 'sha256';
    if (spec.validity) {
      await this.issueWithCa(spec, files.key, cert, serial, subject, md);
    } else {
      const args = ['req', '-new', '-x509', '-config', this.reqCnf, '-key', files.key, '-utf8'];
      args.push('-subj', subject, '-set_serial', `0x${serial}`, '-days', '10000', `-${md}`);
      args.push('-extensions', spec.ext, '-out', cert);
      if (spec.issuer) args.push('-CA', spec.issuer.cert, '-CAkey', spec.issuer.key);
      if (spec.sans?.length) args.push('-addext', `subjectAltName=${spec.sans.join(',')}`);
      await openssl(args, this.dir);
    }
    return { ...files, name: spec.name, cert, certPem: await readFile(cert, 'utf8'), serial, subject };
  }

  /** `openssl req -x509` cannot set notBefore (OpenSSL 3.0), `openssl ca` can: CSR, then sign. */
  private async issueWithCa(
    spec: IssueSpec,
    keyPath: string,
    cert: string,
    serial: string,
    subject: string,
    md: string,
  ): Promise<void> {
    const issuer = spec.issuer;
    const validity = spec.validity;
    if (!issuer || !validity) throw new Error('an explicit validity needs an issuer');
    const db = await this.caDb(serial, '');
    const csr = join(db.dir, 'req.csr');
    await openssl(
      ['req', '-new', '-config', this.reqCnf, '-utf8', '-key', keyPath, '-subj', subject, '-out', csr],
      this.dir,
    );
    const ext = [...EXT_SECTIONS[spec.ext]];
    if (spec.sans?.length) ext.push(`subjectAltName = ${spec.sans.join(', ')}`);
    const extFile = join(db.dir, 'ext.cnf');
    await writeFile(extFile, `[ext]\n${ext.join('\n')}\n`);
    await openssl(
      [
        'ca',
        '-batch',
        '-config',
        db.cnf,
        '-cert',
        issuer.cert,
        '-keyfile',
        issuer.key,
        '-in',
        csr,
        '-out',
        cert,
        '-md',
        md,
        '-notext',
        '-preserveDN',
        '-startdate',
        genTime(validity.notBefore),
        '-enddate',
        genTime(validity.notAfter),
        '-extfile',
        extFile,
        '-extensions',
        'ext',
      ],
      this.dir,
    );
    await rm(db.dir, { recursive: true, force: true });
  }

  /** A throwaway `openssl ca` database (one per call, so parallel calls never share index.txt). */
  private async caDb(serial: string, index: string): Promise<{ dir: string; cnf: string }> {
    const dir = join(this.dir, `.ca-${++this.seq}`);
    await mkdir(dir);
    await writeFile(join(dir, 'index.txt'), index);
    await writeFile(join(dir, 'serial'), `${serial}\n`);
    const cnf = join(dir, 'ca.cnf');
    await writeFile(
      cnf,
      `[ca]\ndefault_ca = d\n[d]\ndatabase = ${dir}/index.txt\nnew_certs_dir = ${dir}\nserial = ${dir}/serial\n` +
        'default_md = sha256\npolicy = p\nunique_subject = no\ndefault_crl_days = 10000\n[p]\n',
    );
    return { dir, cnf };
  }

  /** A CRL signed by `ca` revoking `revoked` (revocation date: one hour ago, reason keyCompromise). */
  async crl(ca: IssuedCert, name: string, revoked: readonly IssuedCert[]): Promise<CrlFile> {
    const when = utcTime(new Date(Date.now() - 3_600_000));
    // index.txt columns: status, expiry (unused by -gencrl), revocation[,reason], serial, file, subject.
    const index = revoked
      .map((c) => `R\t491231235959Z\t${when},keyCompromise\t${c.serial}\tunknown\t${c.subject}\n`)
      .join('');
    const db = await this.caDb('01', index);
    const path = join(this.dir, name);
    await openssl(
      ['ca', '-gencrl', '-batch', '-config', db.cnf, '-cert', ca.cert, '-keyfile', ca.key, '-out', path],
      this.dir,
    );
    await rm(db.dir, { recursive: true, force: true });
    // The issuer's subject hash names the file in a hashed CRL directory (`<hash>.r0`).
    const hash = (await openssl(['crl', '-hash', '-noout', '-in', path], this.dir)).trim();
    return { path, pem: await readFile(path, 'utf8'), hash };
  }
}

/**
 * Generates the whole certificate set into `dir` (default: a new directory under the OS temp dir,
 * mode 0755 so that other users can traverse it; keys stay 0600 and root-owned, so a server that runs
 * as another user needs copies — `startPostgres` makes them).
 */
export async function createCertSet(dir?: string): Promise<CertSet> {
  const base = dir ?? (await mkdtemp(join(tmpdir(), 'pgconn-certs-')));
  await mkdir(base, { recursive: true, mode: 0o755 });
  const f = new Factory(base);
  await f.init();

  const root = await f.issue({
    name: 'root_ca',
    subject: [['CN', 'Test root CA for PostgreSQL SSL regression test suite']],
    ext: 'ca_ext',
  });
  const [serverCa, clientCa, wrongCa] = await Promise.all([
    f.issue({
      name: 'server_ca',
      subject: [['CN', 'Test CA for PostgreSQL SSL regression test server certs']],
      issuer: root,
      ext: 'ca_ext',
    }),
    f.issue({
      name: 'client_ca',
      subject: [['CN', 'Test CA for PostgreSQL SSL regression test client certs']],
      issuer: root,
      ext: 'ca_ext',
    }),
    f.issue({
      name: 'wrong_ca',
      subject: [['CN', 'Unrelated test CA (not trusted by anything in this set)']],
      ext: 'ca_ext',
    }),
  ]);

  const srv = (name: string, cn: string | null, sans: readonly string[], extra?: Partial<IssueSpec>) =>
    f.issue({
      name,
      subject:
        cn === null
          ? [['OU', OU]]
          : [
              ['OU', OU],
              ['CN', cn],
            ],
      issuer: serverCa,
      ext: 'leaf_ext',
      sans,
      ...extra,
    });
  const cli = (name: string, subject: Subject, extra?: Partial<IssueSpec>) =>
    f.issue({ name, subject, issuer: clientCa, ext: 'leaf_ext', ...extra });

  const now = Date.now();
  const [
    cnOnly,
    cnAndAltNames,
    cnAndIpAltNames,
    ipAltNames,
    ipCnOnly,
    ipCnAndAltNames,
    ipCnAndDnsAltNames,
    ipInDnsname,
    singleAltName,
    multipleAltNames,
    localhost,
    noNames,
    serverRevoked,
    rsapss,
    sha384,
    expired,
    notYetValid,
    client,
    clientDn,
    clientRevoked,
    clientRevokedUtf8,
    clientExt,
    clientLong,
    clientWrongCa,
  ] = await Promise.all([
    srv('server-cn-only', CN_NAME, []),
    srv('server-cn-and-alt-names', CN_NAME, [`DNS:${DNS1}`, `DNS:${DNS2}`]),
    srv('server-cn-and-ip-alt-names', CN_NAME, ['IP:192.0.2.1', 'IP:2001:DB8::1']),
    srv('server-ip-alt-names', null, ['IP:192.0.2.1', 'IP:2001:DB8::1']),
    srv('server-ip-cn-only', '192.0.2.1', []),
    srv('server-ip-cn-and-alt-names', '192.0.2.1', ['IP:192.0.2.2', 'IP:2001:DB8::1']),
    srv('server-ip-cn-and-dns-alt-names', '192.0.2.1', [`DNS:${DNS1}`, `DNS:${DNS2}`]),
    srv('server-ip-in-dnsname', null, ['DNS:192.0.2.1']),
    srv('server-single-alt-name', null, ['DNS:single.alt-name.pg-ssltest.test']),
    srv('server-multiple-alt-names', null, [`DNS:${DNS1}`, `DNS:${DNS2}`, 'DNS:*.wildcard.pg-ssltest.test']),
    srv('server-localhost-alt-names', null, LOCALHOST_SANS),
    srv('server-no-names', null, []),
    srv('server-revoked', CN_NAME, []),
    f.issue({
      name: 'server-rsapss',
      subject: [
        ['OU', OU],
        ['CN', CN_NAME],
      ],
      ext: 'leaf_ext',
      keyType: 'rsa-pss',
    }),
    srv('server-sha384', CN_NAME, [], { md: 'sha384' }),
    srv('server-expired', CN_NAME, LOCALHOST_SANS, {
      validity: { notBefore: new Date(now - 730 * DAY), notAfter: new Date(now - 365 * DAY) },
    }),
    srv('server-not-yet-valid', CN_NAME, LOCALHOST_SANS, {
      validity: { notBefore: new Date(now + 365 * DAY), notAfter: new Date(now + 730 * DAY) },
    }),
    cli('client', [['CN', 'ssltestuser']]),
    cli('client-dn', [
      ['O', 'PGDG'],
      ['OU', 'Engineering'],
      ['OU', 'Testing'],
      ['CN', 'ssltestuser-dn'],
    ]),
    cli('client-revoked', [['CN', 'ssltestuser']]),
    cli('client-revoked-utf8', [['CN', 'Οδυσσέας']]),
    cli('client_ext', [['CN', 'ssltestuser']], { ext: 'client_ext' }),
    cli('client-long', [
      ['O', 'PGDG'],
      ['OU', 'Some Organizational Unit'],
      ['CN', 'ssl-123456789012345678901234567890123456789012345678901234567890'],
    ]),
    cli('client-wrong-ca', [['CN', 'ssltestuser']], { issuer: wrongCa }),
  ]);

  const cat = async (name: string, ...pems: string[]): Promise<string> => {
    const p = join(base, name);
    await writeFile(p, pems.join(''));
    return p;
  };

  const [serverCrlFile, clientCrlFile, rootCrlFile] = await Promise.all([
    f.crl(serverCa, 'server.crl', [serverRevoked]),
    f.crl(clientCa, 'client.crl', [clientRevoked, clientRevokedUtf8]),
    f.crl(root, 'root.crl', []),
  ]);
  const crlDir = async (name: string, crls: readonly CrlFile[]): Promise<string> => {
    const d = join(base, name);
    await mkdir(d, { mode: 0o755 });
    await Promise.all(crls.map((c) => writeFile(join(d, `${c.hash}.r0`), c.pem)));
    return d;
  };

  const clientKeyPem = client.keyPem;
  const cache = new Map<string, Promise<IssuedCert>>();

  const set: CertSet = {
    dir: base,
    ca: { root, server: serverCa, client: clientCa, wrong: wrongCa },
    bundles: {
      rootServerCa: await cat('root+server_ca.crt', root.certPem, serverCa.certPem),
      rootClientCa: await cat('root+client_ca.crt', root.certPem, clientCa.certPem),
      bothCas1: await cat('both-cas-1.crt', root.certPem, serverCa.certPem, clientCa.certPem),
      bothCas2: await cat('both-cas-2.crt', root.certPem, clientCa.certPem, serverCa.certPem),
      clientChain: await cat('client+client_ca.crt', client.certPem, clientCa.certPem),
      serverCnOnlyChain: await cat('server-cn-only+server_ca.crt', cnOnly.certPem, serverCa.certPem),
      serverLocalhostChain: await cat(
        'server-localhost-alt-names+server_ca.crt',
        localhost.certPem,
        serverCa.certPem,
      ),
    },
    server: {
      cnOnly,
      cnAndAltNames,
      cnAndIpAltNames,
      ipAltNames,
      ipCnOnly,
      ipCnAndAltNames,
      ipCnAndDnsAltNames,
      ipInDnsname,
      singleAltName,
      multipleAltNames,
      localhost,
      noNames,
      revoked: serverRevoked,
      rsapss,
      sha384,
      expired,
      notYetValid,
    },
    serverKeys: {
      cnOnlyPassword: await writeEncryptedKey(
        join(base, 'server-password.key'),
        cnOnly.keyPem,
        'pem',
        SERVER_KEY_PASSPHRASE,
        'aes-256-cbc',
      ),
      localhostPassword: await writeEncryptedKey(
        join(base, 'server-localhost-alt-names-password.key'),
        localhost.keyPem,
        'pem',
        SERVER_KEY_PASSPHRASE,
        'aes-256-cbc',
      ),
    },
    client: {
      client,
      dn: clientDn,
      revoked: clientRevoked,
      revokedUtf8: clientRevokedUtf8,
      ext: clientExt,
      long: clientLong,
      wrongCa: clientWrongCa,
    },
    clientKeys: {
      der: client.keyDer,
      encryptedPem: await writeEncryptedKey(
        join(base, 'client-encrypted-pem.key'),
        clientKeyPem,
        'pem',
        CLIENT_KEY_PASSPHRASE,
        'aes-128-cbc',
      ),
      encryptedDer: await writeEncryptedKey(
        join(base, 'client-encrypted-der.key'),
        clientKeyPem,
        'der',
        CLIENT_KEY_PASSPHRASE,
        'aes-128-cbc',
      ),
    },
    crl: {
      server: serverCrlFile.path,
      client: clientCrlFile.path,
      root: rootCrlFile.path,
      rootServer: await cat('root+server.crl', rootCrlFile.pem, serverCrlFile.pem),
      rootClient: await cat('root+client.crl', rootCrlFile.pem, clientCrlFile.pem),
      serverDir: await crlDir('server-crldir', [serverCrlFile]),
      clientDir: await crlDir('client-crldir', [clientCrlFile]),
      rootServerDir: await crlDir('root+server-crldir', [rootCrlFile, serverCrlFile]),
      rootClientDir: await crlDir('root+client-crldir', [rootCrlFile, clientCrlFile]),
    },
    clientCert(cn, opts = {}) {
      const which = opts.ca ?? 'client';
      const cacheKey = `${which}\0${cn}`;
      let p = cache.get(cacheKey);
      if (!p) {
        const safe = cn.replace(/[^A-Za-z0-9_.-]/g, '_');
        p = f.issue({
          name: `client-cn-${safe}${which === 'wrong' ? '-wrong-ca' : ''}-${cache.size}`,
          subject: [['CN', cn]],
          issuer: which === 'wrong' ? wrongCa : clientCa,
          ext: 'leaf_ext',
        });
        cache.set(cacheKey, p);
      }
      return p;
    },
    remove: () => rm(base, { recursive: true, force: true }),
  };
  return set;
}
