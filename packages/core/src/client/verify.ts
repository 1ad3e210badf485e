/**
 * Host-name verification for sslmode=verify-full, by libpq's rules (fe-secure-common.c,
 * pgtls_verify_peer_name_matches_certificate_guts) rather than Node's checkServerIdentity:
 * - the host is an IP address when it parses as IPv4 (inet_aton forms included) or IPv6;
 * - dNSName SANs are compared for any host type; iPAddress SANs only for IP hosts, byte-wise;
 * - a SAN of the host's own type disables the CN fallback;
 * - wildcards: "*." prefix only, matching exactly one non-empty label, case-insensitive.
 */
import { TlsError } from '../errors.ts';
import { certificateNameFields, parseSubjectAltNames, type SubjectAltName } from '../x509/certificate.ts';

export type { SubjectAltName } from '../x509/certificate.ts';

export interface CertificateNames {
  /** dNSName and iPAddress entries in certificate order (libpq reports the first one examined). */
  altNames: SubjectAltName[];
  /** Subject common names in order (libpq checks the first). */
  commonNames: string[];
}

/** Extracts the names libpq considers from a DER certificate. */
export function certificateNames(der: Uint8Array): CertificateNames {
  let fields: ReturnType<typeof certificateNameFields>;
  try {
    fields = certificateNameFields(der);
  } catch (e) {
    throw new TlsError(`could not parse server certificate: ${(e as Error).message}`);
  }
  let altNames: SubjectAltName[] = [];
  if (fields.altNameValue) {
    try {
      altNames = parseSubjectAltNames(fields.altNameValue);
    } catch {
      throw new TlsError('could not parse the subjectAltName extension of the server certificate');
    }
  }
  return { altNames, commonNames: fields.commonNames };
}

/** inet_aton: 1-4 parts, each decimal, octal (0...) or hex (0x...), the last filling the rest. */
export function parseIPv4(host: string): Uint8Array | null {
  const parts = host.split('.');
  if (parts.length < 1 || parts.length > 4) return null;
  const nums: number[] = [];
  for (const p of parts) {
    let n: number;
    if (/^0[xX][0-9a-fA-F]*$/.test(p)) n = p.length === 2 ? 0 : Number.parseInt(p.slice(2), 16);
    else if (/^0[0-7]*$/.test(p)) n = Number.parseInt(p, 8);
    else if (/^[1-9][0-9]*$/.test(p)) n = Number.parseInt(p, 10);
    else return null;
    nums.push(n);
  }
  const out = new Uint8Array(4);
  const last = nums.length - 1;
  for (let i = 0; i < last; i++) {
    if (nums[i]! > 255) return null;
    out[i] = nums[i]!;
  }
  const restBytes = 4 - last;
  let v = nums[last]!;
  if (v >= 2 ** (8 * restBytes)) return null;
  for (let i = 3; i >= last; i--) {
    out[i] = v & 0xff;
    v = Math.floor(v / 256);
  }
  return out;
}

/** inet_pton(AF_INET6), including an embedded dotted IPv4 tail. */
export function parseIPv6(host: string): Uint8Array | null {
  if (!host.includes(':')) return null;
  let head = host;
  let tail4: Uint8Array | null = null;
  const lastColon = host.lastIndexOf(':');
  const maybe4 = host.slice(lastColon + 1);
  if (maybe4.includes('.')) {
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(maybe4)) return null;
    tail4 = Uint8Array.from(maybe4.split('.').map(Number));
    if (tail4.some((b, i) => Number(maybe4.split('.')[i]) > 255 || b > 255)) return null;
    head = `${host.slice(0, lastColon + 1)}0:0`;
  }
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const parse = (s: string): number[] | null => {
    if (s === '') return [];
    const groups = s.split(':');
    const out: number[] = [];
    for (const g of groups) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(Number.parseInt(g, 16));
    }
    return out;
  };
  const left = parse(halves[0]!);
  const right = halves.length === 2 ? parse(halves[1]!) : [];
  if (!left || !right) return null;
  const fill = 8 - left.length - right.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return null;
  const groups = [...left, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...right];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  if (tail4) out.set(tail4, 12);
  return out;
}

/** libpq's wildcard_certificate_match plus exact comparison, both case-insensitive. */
export function nameMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase();
  const h = host.toLowerCase();
  if (p === h) return true;
  if (!p.startsWith('*.') || p.length < 3) return false;
  const suffix = p.slice(1); // ".example.com"
  if (h.length <= suffix.length || !h.endsWith(suffix)) return false;
  const label = h.slice(0, h.length - suffix.length);
  return !label.includes('.');
}

const bytesEqual = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Throws TlsError with libpq's wording unless the certificate names match `host`.
 * `host` is the connection's `host` (not `hostaddr`); empty means none was given.
 */
export function verifyHostName(der: Uint8Array, host: string): void {
  if (!host) throw new TlsError('host name must be specified for a verified SSL connection');
  const names = certificateNames(der);
  const ip4 = parseIPv4(host);
  const ip = ip4 ?? parseIPv6(host);
  const hostIsIp = ip !== null;
  const examined: string[] = [];
  let sameTypeSan = false;

  for (const san of names.altNames) {
    if (san.kind === 'dns') {
      if (san.name.includes('\0')) throw new TlsError("SSL certificate's name contains embedded null");
      if (!hostIsIp) sameTypeSan = true;
      examined.push(san.name);
      if (nameMatches(san.name, host)) return;
    } else {
      const addr = san.address;
      if (addr.length !== 4 && addr.length !== 16) {
        throw new TlsError(`certificate contains IP address with invalid length ${addr.length}`);
      }
      if (hostIsIp) sameTypeSan = true;
      examined.push(formatIp(addr));
      // An IPv6 host only matches 16-byte entries, an IPv4 host 4-byte ones.
      if (ip && bytesEqual(addr, ip)) return;
    }
  }
  // CN fallback when no SAN of the host's type exists (an IP host may match a CN even when the SANs
  // hold dNSNames only, as libpq does).
  if (!sameTypeSan) {
    const cn = names.commonNames[0];
    if (cn !== undefined) {
      if (cn.includes('\0')) throw new TlsError("SSL certificate's name contains embedded null");
      examined.push(cn);
      if (nameMatches(cn, host)) return;
    }
  }
  if (examined.length === 0) throw new TlsError("could not get server's host name from server certificate");
  const first = examined[0]!;
  const others = examined.length - 1;
  if (others === 0)
    throw new TlsError(`server certificate for "${first}" does not match host name "${host}"`);
  throw new TlsError(
    `server certificate for "${first}" (and ${others} other name${others === 1 ? '' : 's'}) does not match host name "${host}"`,
  );
}

/**
 * The name libpq reports for an iPAddress SAN: pg_inet_net_ntop's text, i.e. BIND's inet_ntop6 for
 * IPv6 (the longest run of two or more zero groups as `::`, the first one on a tie; `::a.b.c.d` and
 * `::ffff:a.b.c.d` for embedded IPv4).
 */
function formatIp(addr: Uint8Array): string {
  if (addr.length === 4) return addr.join('.');
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((addr[i]! << 8) | addr[i + 1]!);
  let best = { base: -1, len: 0 };
  let cur = { base: -1, len: 0 };
  words.forEach((w, i) => {
    if (w === 0) cur = cur.base === -1 ? { base: i, len: 1 } : { base: cur.base, len: cur.len + 1 };
    else if (cur.base !== -1) {
      if (best.base === -1 || cur.len > best.len) best = cur;
      cur = { base: -1, len: 0 };
    }
  });
  if (cur.base !== -1 && (best.base === -1 || cur.len > best.len)) best = cur;
  if (best.base !== -1 && best.len < 2) best = { base: -1, len: 0 };
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (best.base !== -1 && i >= best.base && i < best.base + best.len) {
      if (i === best.base) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    const v4 =
      i === 6 &&
      best.base === 0 &&
      (best.len === 6 || (best.len === 7 && words[7] !== 0x0001) || (best.len === 5 && words[5] === 0xffff));
    if (v4) return out + Array.from(addr.subarray(12)).join('.');
    out += words[i]!.toString(16);
  }
  if (best.base !== -1 && best.base + best.len === 8) out += ':';
  return out;
}
