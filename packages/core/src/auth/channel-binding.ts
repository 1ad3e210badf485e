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
 * SHA-256/384/512 run on WebCrypto; the rarer SHA-224, SHA-512/224, SHA-512/256 and SHA-3 digests (which
 * OpenSSL also supports, and WebCrypto lacks) come from @noble/hashes.
 */

import { sha224, sha512_224, sha512_256 } from '@noble/hashes/sha2.js';
import { sha3_224, sha3_256, sha3_384, sha3_512 } from '@noble/hashes/sha3.js';
import { AsnConvert, AsnProp, AsnPropTypes } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Certificate } from '@peculiar/asn1-x509';
import { AuthError } from '../errors.ts';
import { owned } from './bytes.ts';

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
 * RSASSA-PSS-params (RFC 4055 / RFC 8017 A.2.3), all fields explicitly tagged and optional:
 *   hashAlgorithm [0] HashAlgorithm DEFAULT sha1, maskGenAlgorithm [1] ..., saltLength [2] INTEGER,
 *   trailerField [3] INTEGER
 * Declared with asn1-schema's AsnProp applied by hand (no decorator syntax in this build).
 */
class RsaSsaPssParams {
  declare hashAlgorithm?: AlgorithmIdentifier;
  declare maskGenAlgorithm?: AlgorithmIdentifier;
  declare saltLength?: number;
  declare trailerField?: number;
}
AsnProp({ type: AlgorithmIdentifier, context: 0, optional: true })(
  RsaSsaPssParams.prototype,
  'hashAlgorithm',
);
AsnProp({ type: AlgorithmIdentifier, context: 1, optional: true })(
  RsaSsaPssParams.prototype,
  'maskGenAlgorithm',
);
AsnProp({ type: AsnPropTypes.Integer, context: 2, optional: true })(RsaSsaPssParams.prototype, 'saltLength');
AsnProp({ type: AsnPropTypes.Integer, context: 3, optional: true })(
  RsaSsaPssParams.prototype,
  'trailerField',
);

const UNDETERMINED = 'could not determine server certificate signature algorithm';

/** The digest of the certificate's signature algorithm, before the MD5/SHA-1 → SHA-256 rule. */
export function certificateSignatureHash(certDer: Uint8Array): HashName {
  let cert: Certificate;
  try {
    cert = AsnConvert.parse(owned(certDer), Certificate);
  } catch {
    throw new AuthError(UNDETERMINED);
  }
  const { algorithm, parameters } = cert.signatureAlgorithm;
  if (algorithm === RSASSA_PSS) {
    if (!parameters) throw new AuthError(UNDETERMINED); // OpenSSL requires the parameters for PSS
    let params: RsaSsaPssParams;
    try {
      params = AsnConvert.parse(parameters, RsaSsaPssParams);
    } catch {
      throw new AuthError(UNDETERMINED);
    }
    const oid = params.hashAlgorithm?.algorithm;
    const hash = oid === undefined ? 'SHA-1' : DIGEST_OID[oid];
    if (!hash) throw new AuthError(UNDETERMINED);
    return hash;
  }
  const hash = SIGNATURE_HASH[algorithm];
  if (hash) return hash;
  if (NO_DIGEST.has(algorithm)) throw new AuthError('could not find digest for NID UNDEF');
  throw new AuthError(UNDETERMINED);
}

async function digest(hash: HashName, data: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  switch (hash) {
    case 'MD5':
    case 'SHA-1':
    case 'SHA-256':
      // RFC 5929 §4.1: MD5 and SHA-1 are replaced by SHA-256.
      return new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', data));
    case 'SHA-384':
    case 'SHA-512':
      return new Uint8Array(await globalThis.crypto.subtle.digest(hash, data));
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
  const hash = certificateSignatureHash(certDer);
  return digest(hash, owned(certDer));
}
