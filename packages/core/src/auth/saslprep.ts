/**
 * SASLprep (RFC 4013, the "SASLprep" profile of RFC 3454 stringprep) and PostgreSQL's use of it for
 * SCRAM passwords (`pg_saslprep`, src/common/saslprep.c).
 *
 * Coverage: every step of the profile is implemented with the RFC 3454 tables themselves (generated
 * from Unicode 3.2 data, see saslprep-tables.ts): mapping (C.1.2 non-ASCII space → U+0020, B.1
 * removed), NFKC, prohibited output (C.1.2, C.2.1, C.2.2, C.3–C.9), unassigned code points (A.1, the
 * "stored strings" rule) and the bidi rule of RFC 3454 §6 (D.1/D.2).
 *
 * One approximation: step 2 uses `String.prototype.normalize('NFKC')`, i.e. the host's current
 * Unicode version rather than Unicode 3.2. The two differ only for the handful of characters whose
 * decomposition changed after 3.2 (corrigenda); any character *assigned* after 3.2 is rejected as
 * unassigned (A.1) after normalization anyway. PostgreSQL also normalizes with its own, current
 * Unicode tables, so this matches what a recent server computes.
 */
import { AuthError } from '../errors.ts';
import { utf8, utf8DecodeStrict } from './bytes.ts';
import {
  L_CAT,
  MAPPED_TO_NOTHING,
  NON_ASCII_SPACE,
  PROHIBITED_OUTPUT,
  RAND_AL_CAT,
  UNASSIGNED,
} from './saslprep-tables.ts';

/** Binary search in a flat sorted list of inclusive [first, last] pairs. */
function inTable(cp: number, table: readonly number[]): boolean {
  let lo = 0;
  let hi = (table.length >> 1) - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const first = table[mid * 2] ?? 0;
    const last = table[mid * 2 + 1] ?? 0;
    if (cp < first) hi = mid - 1;
    else if (cp > last) lo = mid + 1;
    else return true;
  }
  return false;
}

function hex(cp: number): string {
  return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

export interface SaslprepOptions {
  /**
   * Allow code points unassigned in Unicode 3.2 (the "query" profile of RFC 3454 §7). Default false:
   * the "stored strings" profile, which is what passwords need and what PostgreSQL applies.
   */
  allowUnassigned?: boolean;
}

/**
 * Strict RFC 4013 SASLprep. Returns the prepared string or throws AuthError naming the offending code
 * point (prohibited, unassigned, or a bidi violation). Lone surrogates count as prohibited (C.5).
 */
export function saslprep(input: string, options: SaslprepOptions = {}): string {
  // 1. Map.
  let mapped = '';
  for (const ch of input) {
    const cp = ch.codePointAt(0) ?? 0;
    if (inTable(cp, NON_ASCII_SPACE)) mapped += ' ';
    else if (!inTable(cp, MAPPED_TO_NOTHING)) mapped += ch;
  }
  // 2. Normalize (NFKC).
  const out = mapped.normalize('NFKC');
  const cps = Array.from(out, (c) => c.codePointAt(0) ?? 0);
  // 3. Prohibit (and 5. unassigned code points).
  for (const cp of cps) {
    if (inTable(cp, PROHIBITED_OUTPUT)) throw new AuthError(`SASLprep: prohibited character ${hex(cp)}`);
    if (!options.allowUnassigned && inTable(cp, UNASSIGNED)) {
      throw new AuthError(`SASLprep: unassigned code point ${hex(cp)}`);
    }
  }
  // 4. Bidi (RFC 3454 §6): a string with any RandALCat character contains no LCat character and
  // starts and ends with a RandALCat character.
  if (cps.some((cp) => inTable(cp, RAND_AL_CAT))) {
    const lcat = cps.find((cp) => inTable(cp, L_CAT));
    if (lcat !== undefined) {
      throw new AuthError(`SASLprep: bidi violation (left-to-right ${hex(lcat)} in a right-to-left string)`);
    }
    if (!inTable(cps[0] ?? 0, RAND_AL_CAT) || !inTable(cps[cps.length - 1] ?? 0, RAND_AL_CAT)) {
      throw new AuthError(
        'SASLprep: bidi violation (right-to-left string must start and end with RandALCat)',
      );
    }
  }
  return out;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is the point
const ASCII_RE = /^[\x00-\x7f]*$/;

/**
 * The password bytes SCRAM hashes, exactly as PostgreSQL derives them on both sides (`pg_saslprep` as
 * used by `scram_SaltedPassword` callers):
 *
 * - pure ASCII passes through unchanged, without any check (so control characters are kept);
 * - otherwise the password is SASLprep'd; if it is not valid UTF-8 (byte input only), contains a
 *   prohibited or unassigned character, fails the bidi rule, or maps to the empty string, the original
 *   bytes are used as they are.
 *
 * A string with lone surrogates cannot be represented in UTF-8; it fails SASLprep (C.5) and falls back
 * to its `TextEncoder` encoding (each lone surrogate becomes U+FFFD), the bytes a client would send.
 */
export function pgSaslprep(password: string | Uint8Array): Uint8Array<ArrayBuffer> {
  let text: string;
  let raw: Uint8Array<ArrayBuffer>;
  if (typeof password === 'string') {
    text = password;
    raw = utf8(password);
  } else {
    raw = new Uint8Array(password);
    const decoded = utf8DecodeStrict(password);
    if (decoded === null) return raw;
    text = decoded;
  }
  if (ASCII_RE.test(text)) return raw;
  try {
    const prepped = saslprep(text);
    return prepped === '' ? raw : utf8(prepped);
  } catch {
    return raw;
  }
}
