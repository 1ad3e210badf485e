/**
 * RFC 5929 `tls-server-end-point` channel-binding data: a hash of the server's leaf certificate (DER)
 * computed with the hash function of the certificate's own signature algorithm, except that MD5 and
 * SHA-1 are replaced by SHA-256. This mirrors libpq's `pgtls_get_peer_certificate_hash` (and the
 * backend's `be_tls_get_certificate_hash`), which take the digest from OpenSSL's
 * `X509_get_signature_info`:
 *
 * - RSA PKCS#1 v1.5, ECDSA and DSA signatures name their hash in the OID;
 * - RSASSA-PSS (1.2.840.113549.1.1.10) carries it in RSASSA-PSS-params (default SHA-1 → SHA-256);
 * - Ed25519/Ed448 have no separate digest: OpenSSL reports NID_undef, and libpq fails with
 *   `could not find digest for NID UNDEF`;
 * - an unknown algorithm or unparsable parameters: `could not determine server certificate signature
 *   algorithm`.
 *
 * Every digest comes from @noble/hashes, synchronously: WebCrypto lacks SHA-224, SHA-512/t and SHA-3
 * (which OpenSSL supports), and its asynchronous SHA-256 of a few KiB costs more than it saves.
 */

import { sha224, sha256, sha384, sha512, sha512_224, sha512_256 } from '@noble/hashes/sha2.js';
import { sha3_224, sha3_256, sha3_384, sha3_512 } from '@noble/hashes/sha3.js';
import { AuthError } from '../errors.ts';
import { algorithmIdentifier, signatureAlgorithm } from '../x509/certificate.ts';
import { context, expectTlv, readTlv, TAG } from '../x509/der.ts';

export type HashName =
  | 'MD5'
  | 'SHA-1'
  | 'SHA-224'
  | 'SHA-256'
  | 'SHA-384'
  | 'SHA-512'
  | 'SHA-512/224'
  | 'SHA-512/256'
  | 'SHA3-224'
  | 'SHA3-256'
  | 'SHA3-384'
  | 'SHA3-512';

const RSASSA_PSS = '1.2.840.113549.1.1.10';

/** Signature algorithm OID → its digest. */
const SIGNATURE_HASH: Readonly<Record<string, HashName>> = {
  // RSA PKCS#1 v1.5
  '1.2.840.113549.1.1.4': 'MD5', // md5WithRSAEncryption
  '1.2.840.113549.1.1.5': 'SHA-1', // sha1WithRSAEncryption
  '1.3.14.3.2.29': 'SHA-1', // sha1WithRSASignature (OIW)
  '1.2.840.113549.1.1.14': 'SHA-224',
  '1.2.840.113549.1.1.11': 'SHA-256',
  '1.2.840.113549.1.1.12': 'SHA-384',
  '1.2.840.113549.1.1.13': 'SHA-512',
  '1.2.840.113549.1.1.15': 'SHA-512/224',
  '1.2.840.113549.1.1.16': 'SHA-512/256',
  '2.16.840.1.101.3.4.3.13': 'SHA3-224',
  '2.16.840.1.101.3.4.3.14': 'SHA3-256',
  '2.16.840.1.101.3.4.3.15': 'SHA3-384',
  '2.16.840.1.101.3.4.3.16': 'SHA3-512',
  // ECDSA
  '1.2.840.10045.4.1': 'SHA-1',
  '1.2.840.10045.4.3.1': 'SHA-224',
  '1.2.840.10045.4.3.2': 'SHA-256',
  '1.2.840.10045.4.3.3': 'SHA-384',
  '1.2.840.10045.4.3.4': 'SHA-512',
  '2.16.840.1.101.3.4.3.9': 'SHA3-224',
  '2.16.840.1.101.3.4.3.10': 'SHA3-256',
  '2.16.840.1.101.3.4.3.11': 'SHA3-384',
  '2.16.840.1.101.3.4.3.12': 'SHA3-512',
  // DSA
  '1.2.840.10040.4.3': 'SHA-1',
  '2.16.840.1.101.3.4.3.1': 'SHA-224',
  '2.16.840.1.101.3.4.3.2': 'SHA-256',
  '2.16.840.1.101.3.4.3.3': 'SHA-384',
  '2.16.840.1.101.3.4.3.4': 'SHA-512',
  '2.16.840.1.101.3.4.3.5': 'SHA3-224',
  '2.16.840.1.101.3.4.3.6': 'SHA3-256',
  '2.16.840.1.101.3.4.3.7': 'SHA3-384',
  '2.16.840.1.101.3.4.3.8': 'SHA3-512',
};

/** Signature algorithms OpenSSL knows but that have no separate digest (mdnid NID_undef). */
const NO_DIGEST = new Set([
  '1.3.101.112', // Ed25519
  '1.3.101.113', // Ed448
]);

/** Digest algorithm OID (as found in RSASSA-PSS-params.hashAlgorithm) → digest. */
const DIGEST_OID: Readonly<Record<string, HashName>> = {
  '1.2.840.113549.2.5': 'MD5',
  '1.3.14.3.2.26': 'SHA-1',
  '2.16.840.1.101.3.4.2.4': 'SHA-224',
  '2.16.840.1.101.3.4.2.1': 'SHA-256',
  '2.16.840.1.101.3.4.2.2': 'SHA-384',
  '2.16.840.1.101.3.4.2.3': 'SHA-512',
  '2.16.840.1.101.3.4.2.5': 'SHA-512/224',
  '2.16.840.1.101.3.4.2.6': 'SHA-512/256',
  '2.16.840.1.101.3.4.2.7': 'SHA3-224',
  '2.16.840.1.101.3.4.2.8': 'SHA3-256',
  '2.16.840.1.101.3.4.2.9': 'SHA3-384',
  '2.16.840.1.101.3.4.2.10': 'SHA3-512',
};

/**
 * RSASSA-PSS-params (RFC 4055 / RFC 8017 A.2.3): SEQUENCE { hashAlgorithm [0] HashAlgorithm DEFAULT
 * sha1, maskGenAlgorithm [1], saltLength [2], trailerField [3] }, all explicitly tagged and optional.
 * Returns the hashAlgorithm's OID, or undefined for the default.
 */
function pssHashOid(params: Uint8Array): string | undefined {
  const seq = expectTlv(params, 0, params.length, TAG.SEQUENCE, 'RSASSA-PSS-params');
  if (seq.end !== params.length || seq.start === seq.end) return undefined;
  const first = readTlv(params, seq.start, seq.end);
  if (first.tag !== context(0, true)) return undefined;
  const alg = expectTlv(params, first.start, first.end, TAG.SEQUENCE, 'hashAlgorithm');
  return algorithmIdentifier(params, alg).algorithm;
}

const UNDETERMINED = 'could not determine server certificate signature algorithm';

/** The digest of the certificate's signature algorithm, before the MD5/SHA-1 → SHA-256 rule. */
export function certificateSignatureHash(certDer: Uint8Array): HashName {
  let algorithm: string;
  let hashOid: string | undefined;
  try {
    const alg = signatureAlgorithm(certDer);
    algorithm = alg.algorithm;
    if (algorithm === RSASSA_PSS) {
      if (!alg.parameters) throw new AuthError(UNDETERMINED); // OpenSSL requires the parameters for PSS
      hashOid = pssHashOid(alg.parameters);
    }
  } catch {
    throw new AuthError(UNDETERMINED);
  }
  if (algorithm === RSASSA_PSS) {
    const hash = hashOid === undefined ? 'SHA-1' : DIGEST_OID[hashOid];
    if (!hash) throw new AuthError(UNDETERMINED);
    return hash;
  }
  const hash = SIGNATURE_HASH[algorithm];
  if (hash) return hash;
  if (NO_DIGEST.has(algorithm)) throw new AuthError('could not find digest for NID UNDEF');
  throw new AuthError(UNDETERMINED);
}

/** Synchronous: a certificate is a few KiB, and WebCrypto's asynchronous digest costs more in latency. */
function digest(hash: HashName, data: Uint8Array): Uint8Array {
  switch (hash) {
    case 'MD5':
    case 'SHA-1':
    case 'SHA-256':
      // RFC 5929 §4.1: MD5 and SHA-1 are replaced by SHA-256.
      return sha256(data);
    case 'SHA-384':
      return sha384(data);
    case 'SHA-512':
      return sha512(data);
    case 'SHA-224':
      return sha224(data);
    case 'SHA-512/224':
      return sha512_224(data);
    case 'SHA-512/256':
      return sha512_256(data);
    case 'SHA3-224':
      return sha3_224(data);
    case 'SHA3-256':
      return sha3_256(data);
    case 'SHA3-384':
      return sha3_384(data);
    case 'SHA3-512':
      return sha3_512(data);
  }
}

/**
 * The `tls-server-end-point` channel-binding data for a server certificate given as DER: the
 * certificate hashed with its signature's digest (MD5/SHA-1 → SHA-256). Throws AuthError when the
 * digest cannot be determined (unknown algorithm, Ed25519/Ed448, malformed certificate).
 */
export async function tlsServerEndPointHash(certDer: Uint8Array): Promise<Uint8Array> {
  return digest(certificateSignatureHash(certDer), certDer);
}
