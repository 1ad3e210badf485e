/**
 * Pre-startup packets (client → server, before any typed message): SSLRequest, GSSENCRequest,
 * CancelRequest and StartupMessage. They carry no type byte: an Int32 length (counting itself), then
 * a body whose first Int32 is either a request code (1234.567x) or the protocol version.
 *
 * Also the unframed one-byte replies to SSLRequest/GSSENCRequest.
 *
 * Encoders validate their input before opening the packet, so a refused call leaves the Writer as it
 * was. Decoders return zero-copy views (`secretKey`) valid as long as the body passed in.
 */
import { ProtocolError } from '../errors.ts';
import {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  MAX_CANCEL_KEY_LENGTH,
  MAX_STARTUP_PACKET_LENGTH,
  NegotiationReply,
  PROTOCOL_3_0,
  SSL_REQUEST_CODE,
} from './constants.ts';
import { decodeText } from './reader.ts';
import type { Writer } from './writer.ts';

/**
 * Bounds of the length word for `Framer.nextUntyped(STARTUP_MIN_LENGTH, STARTUP_MAX_LENGTH)`,
 * mirroring the server's `ProcessStartupPacket` check `4 <= len - 4 <= MAX_STARTUP_PACKET_LENGTH`:
 * the body must at least hold the code/version word and at most 10000 bytes. The server closes
 * silently (no ErrorResponse) when these are violated.
 */
export const STARTUP_MIN_LENGTH = 8;
export const STARTUP_MAX_LENGTH = MAX_STARTUP_PACKET_LENGTH + 4;

/** A packet a client sends before (or instead of) the typed protocol. */
export type StartupPacket =
  | { type: 'SSLRequest' }
  | { type: 'GSSENCRequest' }
  /**
   * `secretKey` is 4 bytes under 3.0, 4..256 under 3.2 (as received in BackendKeyData); decoded, a
   * view into the body.
   */
  | { type: 'CancelRequest'; processId: number; secretKey: Uint8Array }
  /**
   * `version` is the full Int32, e.g. 0x00030000 (3.0) or 0x00030002 (3.2). `parameters` keeps wire
   * order, `_pq_.*` protocol options included.
   */
  | { type: 'StartupMessage'; version: number; parameters: Map<string, string> };

export type StartupPacketType = StartupPacket['type'];
/** The packet variant with the given `type`, e.g. `StartupPacketOf<'CancelRequest'>`. */
export type StartupPacketOf<T extends StartupPacketType> = Extract<StartupPacket, { type: T }>;

export interface StartupMessageInit {
  /** Defaults to protocol 3.0. Not restricted, so tests can probe a server with e.g. 2.0 or 3.9999. */
  version?: number;
  /** Sent in iteration order. */
  parameters: Iterable<readonly [string, string]>;
}

const fail = (msg: string): never => {
  throw new ProtocolError(msg);
};

const checkCString = (s: string, what: string): void => {
  if (s.includes('\0')) fail(`${what} contains a NUL byte and cannot be sent`);
};

export function encodeSSLRequest(w: Writer): void {
  w.beginUntyped().u32(SSL_REQUEST_CODE).end();
}

export function encodeGSSENCRequest(w: Writer): void {
  w.beginUntyped().u32(GSSENC_REQUEST_CODE).end();
}

/** The key is sent as received in BackendKeyData; the server accepts 1..256 bytes. */
export function encodeCancelRequest(w: Writer, processId: number, secretKey: Uint8Array): void {
  if (!Number.isInteger(processId) || processId < -0x8000_0000 || processId > 0x7fff_ffff)
    fail(`invalid process ID ${processId} for cancel request`);
  if (secretKey.length === 0 || secretKey.length > MAX_CANCEL_KEY_LENGTH)
    fail(`invalid length of cancel key: ${secretKey.length} bytes (must be 1 to ${MAX_CANCEL_KEY_LENGTH})`);
  w.beginUntyped().u32(CANCEL_REQUEST_CODE).i32(processId).bytes(secretKey).end();
}

export function encodeStartupMessage(w: Writer, init: StartupMessageInit): void {
  const version = init.version ?? PROTOCOL_3_0;
  if (!Number.isInteger(version) || version < 0 || version > 0xffff_ffff)
    fail(`invalid protocol version ${version}`);
  // Validate everything first: the Writer cannot abandon a half-written packet.
  const pairs = [...init.parameters];
  const seen = new Set<string>();
  for (const [name, value] of pairs) {
    // An empty name would read as the terminator; a duplicate is refused by our own decoder.
    if (name === '') fail('startup parameter name must not be empty');
    if (seen.has(name)) fail(`duplicate startup parameter "${name}"`);
    seen.add(name);
    checkCString(name, `startup parameter name "${name}"`);
    checkCString(value, `value of startup parameter "${name}"`);
  }
  w.beginUntyped().u32(version);
  for (const [name, value] of pairs) w.text(name).u8(0).text(value).u8(0);
  w.u8(0).end();
}

export function encodeStartupPacket(w: Writer, packet: StartupPacket): void {
  switch (packet.type) {
    case 'SSLRequest':
      encodeSSLRequest(w);
      return;
    case 'GSSENCRequest':
      encodeGSSENCRequest(w);
      return;
    case 'CancelRequest':
      encodeCancelRequest(w, packet.processId, packet.secretKey);
      return;
    case 'StartupMessage':
      encodeStartupMessage(w, packet);
      return;
  }
}

const readU32 = (b: Uint8Array, at: number): number =>
  ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

/**
 * Decodes the body of a pre-startup packet (what `Framer.nextUntyped` returns: everything after the
 * length word). Error texts follow the server's where it has one.
 *
 * Deliberate choices:
 * - SSLRequest/GSSENCRequest with extra bytes are refused (the server ignores them): trailing bytes
 *   mean a framing disagreement.
 * - Any 3.x version is decoded, 3.1 (reserved) and 3.9999 (grease) included: accepting, negotiating
 *   down or refusing is the server state machine's decision. Other major versions are refused.
 * - A cancel key of 1..3 bytes is decoded (the server accepts it); 0 or >256 bytes is refused.
 * - A duplicate parameter name is refused (the server would let the later one win).
 */
export function decodeStartupPacket(body: Uint8Array): StartupPacket {
  if (body.length < 4) fail(`invalid length of startup packet: ${body.length + 4}`);
  const code = readU32(body, 0);
  switch (code) {
    case SSL_REQUEST_CODE:
      if (body.length !== 4) fail(`invalid length of SSL request packet: ${body.length + 4}`);
      return { type: 'SSLRequest' };
    case GSSENC_REQUEST_CODE:
      if (body.length !== 4) fail(`invalid length of GSSAPI encryption request packet: ${body.length + 4}`);
      return { type: 'GSSENCRequest' };
    case CANCEL_REQUEST_CODE: {
      if (body.length < 8) fail('invalid length of cancel request packet');
      const keyLength = body.length - 8;
      if (keyLength === 0 || keyLength > MAX_CANCEL_KEY_LENGTH)
        fail('invalid length of cancel key in cancel request packet');
      return { type: 'CancelRequest', processId: readU32(body, 4) | 0, secretKey: body.subarray(8) };
    }
  }
  const major = code >>> 16;
  if (major !== 3)
    fail(`unsupported frontend protocol ${major}.${code & 0xffff}: server supports 3.0 to 3.2`);
  return { type: 'StartupMessage', version: code, parameters: decodeParameters(body) };
}

function decodeParameters(body: Uint8Array): Map<string, string> {
  const parameters = new Map<string, string>();
  const end = body.length;
  let pos = 4;
  for (;;) {
    const nameEnd = body.indexOf(0, pos);
    // Missing terminator, or a name without its value: the server's wording for either.
    if (nameEnd === -1) break;
    if (nameEnd === pos) {
      // The empty name is the terminator, which must be the last byte.
      if (pos === end - 1) return parameters;
      break;
    }
    const valueEnd = body.indexOf(0, nameEnd + 1);
    if (valueEnd === -1) break;
    const name = decodeText(body, pos, nameEnd);
    if (parameters.has(name)) fail(`invalid startup packet: duplicate parameter "${name}"`);
    parameters.set(name, decodeText(body, nameEnd + 1, valueEnd));
    pos = valueEnd + 1;
  }
  return fail('invalid startup packet layout: expected terminator as last byte');
}

/** What a one-byte reply to SSLRequest/GSSENCRequest means; the state machine words the errors. */
export type NegotiationReplyKind =
  /** 'S': the server starts TLS. */
  | 'ssl'
  /** 'G': the server starts GSSAPI encryption. */
  | 'gss'
  /** 'N': refused; the connection stays usable in plaintext. */
  | 'refused'
  /** 'E': an error (pre-v12 server, fork failure...), not to be read further. */
  | 'error'
  /** Anything else, or -1 (no byte). */
  | 'invalid';

export interface DecodedNegotiationReply {
  kind: NegotiationReplyKind;
  /** The byte as received, for error texts such as "received invalid response to SSL negotiation: %c". */
  byte: number;
}

/** Classifies the byte from `Framer.readByte()`. Never throws: which replies are valid depends on the request. */
export function decodeNegotiationReply(byte: number): DecodedNegotiationReply {
  switch (byte) {
    case NegotiationReply.SSLAccepted:
      return { kind: 'ssl', byte };
    case NegotiationReply.GSSAccepted:
      return { kind: 'gss', byte };
    case NegotiationReply.Refused:
      return { kind: 'refused', byte };
    case NegotiationReply.Error:
      return { kind: 'error', byte };
    default:
      return { kind: 'invalid', byte };
  }
}

/** Server side: writes the unframed reply byte. */
export function encodeNegotiationReply(w: Writer, kind: 'ssl' | 'gss' | 'refused'): void {
  w.u8(
    kind === 'ssl'
      ? NegotiationReply.SSLAccepted
      : kind === 'gss'
        ? NegotiationReply.GSSAccepted
        : NegotiationReply.Refused,
  );
}
