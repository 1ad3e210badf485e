/**
 * The certificate fields pgconn reads (RFC 5280 §4.1), walked with the DER reader:
 *
 *   Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm AlgorithmIdentifier, signature BIT STRING }
 *   TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer, validity,
 *                                 subject Name, subjectPublicKeyInfo, [1] OPTIONAL, [2] OPTIONAL,
 *                                 [3] extensions OPTIONAL }
 *
 * The certificate comes from a completed TLS handshake, so the TLS library has already parsed it; the
 * walk still checks every length and tag it crosses and throws DerError on anything else.
 */
// One char per byte (latin1): dNSName is an IA5String, and an embedded NUL must stay visible to the caller.
import { latin1 } from '../auth/bytes.ts';
import { children, context, DerError, expectTlv, oidText, readTlv, TAG, type Tlv } from './der.ts';

const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_COMMON_NAME = '2.5.4.3';

export interface AlgorithmIdentifier {
  algorithm: string;
  /** The parameters element, DER-encoded (absent when the algorithm has none). */
  parameters?: Uint8Array;
}

export type SubjectAltName = { kind: 'dns'; name: string } | { kind: 'ip'; address: Uint8Array };

/** The top-level parts of a certificate. */
interface Parts {
  tbs: Tlv;
  signatureAlgorithm: Tlv;
}

function parts(der: Uint8Array): Parts {
  const cert = expectTlv(der, 0, der.length, TAG.SEQUENCE, 'Certificate');
  if (cert.end !== der.length) throw new DerError('trailing bytes after the certificate');
  const tbs = expectTlv(der, cert.start, cert.end, TAG.SEQUENCE, 'tbsCertificate');
  const signatureAlgorithm = expectTlv(der, tbs.end, cert.end, TAG.SEQUENCE, 'signatureAlgorithm');
  const signature = expectTlv(der, signatureAlgorithm.end, cert.end, TAG.BIT_STRING, 'signature');
  if (signature.end !== cert.end) throw new DerError('trailing elements in the certificate');
  return { tbs, signatureAlgorithm };
}

/** Reads an AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }. */
export function algorithmIdentifier(der: Uint8Array, seq: Tlv): AlgorithmIdentifier {
  const oid = expectTlv(der, seq.start, seq.end, TAG.OID, 'algorithm');
  const algorithm = oidText(der, oid);
  if (oid.end === seq.end) return { algorithm };
  const params = readTlv(der, oid.end, seq.end);
  if (params.end !== seq.end) throw new DerError('trailing elements in an AlgorithmIdentifier');
  return { algorithm, parameters: der.subarray(oid.end, params.end) };
}

/** The certificate's outer signatureAlgorithm. */
export function signatureAlgorithm(der: Uint8Array): AlgorithmIdentifier {
  return algorithmIdentifier(der, parts(der).signatureAlgorithm);
}

/** The TBSCertificate fields pgconn reads: the subject Name and the extensions, if any. */
function tbsFields(der: Uint8Array): { subject: Tlv; extensions: Tlv | null } {
  const { tbs } = parts(der);
  let pos = tbs.start;
  const next = (tag: number, what: string): Tlv => {
    const t = expectTlv(der, pos, tbs.end, tag, what);
    pos = t.end;
    return t;
  };
  if (readTlv(der, pos, tbs.end).tag === context(0, true)) next(context(0, true), 'version');
  next(TAG.INTEGER, 'serialNumber');
  next(TAG.SEQUENCE, 'signature');
  next(TAG.SEQUENCE, 'issuer');
  next(TAG.SEQUENCE, 'validity');
  const subject = next(TAG.SEQUENCE, 'subject');
  next(TAG.SEQUENCE, 'subjectPublicKeyInfo');
  let extensions: Tlv | null = null;
  while (pos < tbs.end) {
    const t = readTlv(der, pos, tbs.end);
    pos = t.end;
    if (t.tag === context(3, true)) {
      extensions = expectTlv(der, t.start, t.end, TAG.SEQUENCE, 'extensions');
      if (extensions.end !== t.end) throw new DerError('trailing bytes after the extensions');
    } else if (t.tag !== context(1, false) && t.tag !== context(2, false)) {
      throw new DerError(`unexpected element 0x${t.tag.toString(16)} in tbsCertificate`);
    }
  }
  return { subject, extensions };
}

/** The content (extnValue) of the extension with this OID, or null. */
function extensionValue(der: Uint8Array, extensions: Tlv | null, oid: string): Uint8Array | null {
  if (!extensions) return null;
  for (const ext of children(der, extensions)) {
    if (ext.tag !== TAG.SEQUENCE) throw new DerError('Extension is not a SEQUENCE');
    const id = expectTlv(der, ext.start, ext.end, TAG.OID, 'extnID');
    let t = readTlv(der, id.end, ext.end);
    if (t.tag === TAG.BOOLEAN) t = readTlv(der, t.end, ext.end); // critical
    if (t.tag !== TAG.OCTET_STRING || t.end !== ext.end) throw new DerError('malformed Extension');
    if (oidText(der, id) === oid) return der.subarray(t.start, t.end);
  }
  return null;
}

const utf8Decoder = new TextDecoder('utf-8');
const utf16beDecoder = new TextDecoder('utf-16be');

/** A DirectoryString/IA5String as text: UTF-8, BMP (UTF-16BE) and Universal (UCS-4) decoded, others byte-wise. */
function directoryString(der: Uint8Array, t: Tlv): string {
  const bytes = der.subarray(t.start, t.end);
  switch (t.tag) {
    case TAG.UTF8_STRING:
      return utf8Decoder.decode(bytes);
    case TAG.BMP_STRING:
      return utf16beDecoder.decode(bytes);
    case TAG.UNIVERSAL_STRING: {
      let s = '';
      for (let i = 0; i + 4 <= bytes.length; i += 4) {
        const cp = ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
        s += cp <= 0x10ffff ? String.fromCodePoint(cp) : '\ufffd';
      }
      return s;
    }
    default:
      return latin1(bytes);
  }
}

/** The common names of a subject Name, in certificate order. */
function commonNames(der: Uint8Array, subject: Tlv): string[] {
  const names: string[] = [];
  for (const rdn of children(der, subject)) {
    if (rdn.tag !== TAG.SET) throw new DerError('RelativeDistinguishedName is not a SET');
    for (const atv of children(der, rdn)) {
      if (atv.tag !== TAG.SEQUENCE) throw new DerError('AttributeTypeAndValue is not a SEQUENCE');
      const type = expectTlv(der, atv.start, atv.end, TAG.OID, 'attribute type');
      const value = readTlv(der, type.end, atv.end);
      if (value.end !== atv.end) throw new DerError('malformed AttributeTypeAndValue');
      if (oidText(der, type) === OID_COMMON_NAME) names.push(directoryString(der, value));
    }
  }
  return names;
}

/** The GeneralNames of a subjectAltName extension value that libpq considers: dNSName [2] and iPAddress [7]. */
export function parseSubjectAltNames(value: Uint8Array): SubjectAltName[] {
  const seq = expectTlv(value, 0, value.length, TAG.SEQUENCE, 'GeneralNames');
  if (seq.end !== value.length) throw new DerError('trailing bytes after GeneralNames');
  const out: SubjectAltName[] = [];
  for (const name of children(value, seq)) {
    if ((name.tag & 0xc0) !== 0x80) continue; // context-specific tags only
    const n = name.tag & 0x1f;
    const bytes = value.subarray(name.start, name.end);
    if (n === 2) out.push({ kind: 'dns', name: latin1(bytes) });
    else if (n === 7) out.push({ kind: 'ip', address: bytes.slice() });
  }
  return out;
}

/**
 * Both name sources libpq reads, in one walk: the subject's common names and the raw subjectAltName
 * extension value (null when absent), which the caller parses with parseSubjectAltNames so that it can
 * report a bad extension apart from a bad certificate.
 */
export function certificateNameFields(der: Uint8Array): {
  commonNames: string[];
  altNameValue: Uint8Array | null;
} {
  const { subject, extensions } = tbsFields(der);
  return {
    commonNames: commonNames(der, subject),
    altNameValue: extensionValue(der, extensions, OID_SUBJECT_ALT_NAME),
  };
}
