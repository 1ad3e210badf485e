/**
 * Backend (server → client) message codecs: `decodeBackend` turns a Frame into a typed message,
 * `encodeBackend` writes one, so the same module serves the client and a server built on this core.
 *
 * Decoding is zero-copy: every Uint8Array in a decoded message (DataRow fields, CopyData, SASL and
 * GSS data, cancel keys, salts...) is a view into the frame's body, which is itself a view into the
 * Framer's buffer. Views are therefore valid only until the next `Framer.push()`; copy (`slice()`)
 * whatever must outlive that.
 *
 * Every read is bounds-checked and any malformed body ends in a ProtocolError, never another
 * exception type. Counts from the wire are checked against the bytes left before anything is
 * allocated for them, so a forged count cannot make us allocate more than the body could describe.
 */
import type { NoticeFields } from '../errors.ts';
import { ProtocolError } from '../errors.ts';
import { AuthCode, BackendType, MAX_CANCEL_KEY_LENGTH } from './constants.ts';
import type { Frame } from './framer.ts';
import { BodyReader } from './reader.ts';
import type { Writer } from './writer.ts';

/** Smallest cancel key a BackendKeyData may carry (3.0 keys are exactly 4 bytes). */
const MIN_CANCEL_KEY_LENGTH = 4;

/** One column of a RowDescription. */
export interface RowDescriptionField {
  name: string;
  /** OID of the source table, or 0. */
  tableOid: number;
  /** Attribute number of the source column, or 0. */
  columnAttr: number;
  typeOid: number;
  /** pg_type.typlen: negative for variable-width types. */
  typeSize: number;
  /** pg_attribute.atttypmod: type-specific, -1 when none. */
  typeModifier: number;
  /** 0 text, 1 binary (0 in a Describe reply: the format is not yet known). */
  format: number;
}

/** Every message a server can send after the startup packet (protocol 3.0 and 3.2). */
export type BackendMessage =
  | { type: 'AuthenticationOk' }
  | { type: 'AuthenticationKerberosV5' }
  | { type: 'AuthenticationCleartextPassword' }
  | { type: 'AuthenticationMD5Password'; salt: Uint8Array }
  | { type: 'AuthenticationGSS' }
  | { type: 'AuthenticationGSSContinue'; data: Uint8Array }
  | { type: 'AuthenticationSSPI' }
  | { type: 'AuthenticationSASL'; mechanisms: string[] }
  | { type: 'AuthenticationSASLContinue'; data: Uint8Array }
  | { type: 'AuthenticationSASLFinal'; data: Uint8Array }
  /** `secretKey` is 4 bytes under 3.0 and 4..256 bytes under 3.2. */
  | { type: 'BackendKeyData'; processId: number; secretKey: Uint8Array }
  | { type: 'BindComplete' }
  | { type: 'CloseComplete' }
  /** `tag` is e.g. `SELECT 3` or `INSERT 0 1`. */
  | { type: 'CommandComplete'; tag: string }
  | { type: 'CopyData'; data: Uint8Array }
  | { type: 'CopyDone' }
  | { type: 'CopyInResponse'; format: 0 | 1; columnFormats: number[] }
  | { type: 'CopyOutResponse'; format: 0 | 1; columnFormats: number[] }
  | { type: 'CopyBothResponse'; format: 0 | 1; columnFormats: number[] }
  /** `null` is SQL NULL (length -1 on the wire). */
  | { type: 'DataRow'; fields: (Uint8Array | null)[] }
  | { type: 'EmptyQueryResponse' }
  | { type: 'ErrorResponse'; fields: NoticeFields }
  | { type: 'NoticeResponse'; fields: NoticeFields }
  | { type: 'FunctionCallResponse'; result: Uint8Array | null }
  /** `version` is the full Int32 the server writes (e.g. 0x00030000 for 3.0), not just the minor. */
  | { type: 'NegotiateProtocolVersion'; version: number; unrecognizedOptions: string[] }
  | { type: 'NoData' }
  | { type: 'NotificationResponse'; processId: number; channel: string; payload: string }
  | { type: 'ParameterDescription'; typeOids: number[] }
  | { type: 'ParameterStatus'; name: string; value: string }
  | { type: 'ParseComplete' }
  | { type: 'PortalSuspended' }
  /** Transaction status: idle, in a transaction block, in a failed transaction block. */
  | { type: 'ReadyForQuery'; status: 'I' | 'T' | 'E' }
  | { type: 'RowDescription'; fields: RowDescriptionField[] };

export type BackendMessageType = BackendMessage['type'];
/** The message variant with the given `type`, e.g. `BackendMessageOf<'DataRow'>`. */
export type BackendMessageOf<T extends BackendMessageType> = Extract<BackendMessage, { type: T }>;

// ---------------------------------------------------------------------------------------------------
// Decoding

const fail = (what: string, reason: string): never => {
  throw new ProtocolError(`invalid ${what} message: ${reason}`);
};

const describeType = (t: number): string =>
  t >= 0x20 && t < 0x7f ? `"${String.fromCharCode(t)}"` : `0x${t.toString(16).padStart(2, '0')}`;

/** For the messages whose body must be empty. */
function empty<T extends BackendMessageType>(body: Uint8Array, type: T): { type: T } {
  if (body.length !== 0) fail(type, `${body.length} unexpected trailing byte(s)`);
  return { type };
}

/**
 * The hot path: hand-rolled big-endian reads on the Uint8Array (no DataView, no BodyReader, no
 * closures) and views made with the Uint8Array constructor, which V8 runs about twice as fast as
 * `subarray()` (no species lookup).
 */
function decodeDataRow(body: Uint8Array): BackendMessage {
  const end = body.length;
  if (end < 2) fail('DataRow', 'truncated');
  const count = (body[0]! << 8) | body[1]!;
  // Int16 on the wire; a set high bit is a negative count.
  if (count > 0x7fff) fail('DataRow', `negative field count ${count - 0x10000}`);
  // Each field needs at least its 4-byte length word: refuse before allocating for `count`.
  if (count * 4 > end - 2) fail('DataRow', `${count} fields cannot fit in ${end} bytes`);
  const fields = new Array<Uint8Array | null>(count);
  const ab = body.buffer;
  const base = body.byteOffset;
  let pos = 2;
  for (let i = 0; i < count; i++) {
    if (end - pos < 4) fail('DataRow', 'truncated');
    const len = (body[pos]! << 24) | (body[pos + 1]! << 16) | (body[pos + 2]! << 8) | body[pos + 3]!;
    pos += 4;
    if (len < 0) {
      if (len !== -1) fail('DataRow', `invalid field length ${len}`);
      fields[i] = null;
    } else {
      if (end - pos < len) fail('DataRow', 'truncated');
      fields[i] = new Uint8Array(ab, base + pos, len);
      pos += len;
    }
  }
  if (pos !== end) fail('DataRow', `${end - pos} unexpected trailing byte(s)`);
  return { type: 'DataRow', fields };
}

function decodeAuthentication(body: Uint8Array): BackendMessage {
  const r = new BodyReader(body, 'Authentication');
  const code = r.i32();
  let msg: BackendMessage;
  switch (code) {
    case AuthCode.Ok:
      msg = { type: 'AuthenticationOk' };
      break;
    case AuthCode.KerberosV5:
      msg = { type: 'AuthenticationKerberosV5' };
      break;
    case AuthCode.CleartextPassword:
      msg = { type: 'AuthenticationCleartextPassword' };
      break;
    case AuthCode.MD5Password:
      msg = { type: 'AuthenticationMD5Password', salt: r.bytes(4) };
      break;
    case AuthCode.GSS:
      msg = { type: 'AuthenticationGSS' };
      break;
    case AuthCode.GSSContinue:
      msg = { type: 'AuthenticationGSSContinue', data: r.rest() };
      break;
    case AuthCode.SSPI:
      msg = { type: 'AuthenticationSSPI' };
      break;
    case AuthCode.SASL: {
      // Mechanism names, ended by an empty string. No count on the wire, so nothing to pre-size.
      const mechanisms: string[] = [];
      for (;;) {
        const m = r.cstring();
        if (m === '') break;
        mechanisms.push(m);
      }
      msg = { type: 'AuthenticationSASL', mechanisms };
      break;
    }
    case AuthCode.SASLContinue:
      msg = { type: 'AuthenticationSASLContinue', data: r.rest() };
      break;
    case AuthCode.SASLFinal:
      msg = { type: 'AuthenticationSASLFinal', data: r.rest() };
      break;
    default:
      return r.fail(`unknown authentication request code ${code}`);
  }
  r.done();
  return msg;
}

function decodeBackendKeyData(body: Uint8Array): BackendMessage {
  const r = new BodyReader(body, 'BackendKeyData');
  const processId = r.i32();
  const secretKey = r.rest();
  // Whether 3.0 demands exactly 4 bytes depends on the negotiated version: the caller checks that.
  if (secretKey.length < MIN_CANCEL_KEY_LENGTH || secretKey.length > MAX_CANCEL_KEY_LENGTH) {
    r.fail(
      `cancel key length ${secretKey.length} is outside ${MIN_CANCEL_KEY_LENGTH}..${MAX_CANCEL_KEY_LENGTH}`,
    );
  }
  return { type: 'BackendKeyData', processId, secretKey };
}

function decodeCopyResponse(
  body: Uint8Array,
  type: 'CopyInResponse' | 'CopyOutResponse' | 'CopyBothResponse',
): BackendMessage {
  const r = new BodyReader(body, type);
  const format = r.u8();
  if (format !== 0 && format !== 1) r.fail(`invalid overall format ${format}`);
  const count = r.i16();
  if (count < 0) r.fail(`negative column count ${count}`);
  if (count * 2 > r.remaining) r.fail(`${count} columns cannot fit in ${body.length} bytes`);
  const columnFormats = new Array<number>(count);
  for (let i = 0; i < count; i++) columnFormats[i] = r.i16();
  r.done();
  return { type, format: format as 0 | 1, columnFormats };
}

/** Field codes of ErrorResponse/NoticeResponse, in the order they are encoded. */
const NOTICE_CODES: ReadonlyArray<readonly [code: number, key: Exclude<keyof NoticeFields, 'unknown'>]> = [
  [0x53, 'severity'], // S
  [0x56, 'severityNonLocalized'], // V
  [0x43, 'code'], // C
  [0x4d, 'message'], // M
  [0x44, 'detail'], // D
  [0x48, 'hint'], // H
  [0x50, 'position'], // P
  [0x70, 'internalPosition'], // p
  [0x71, 'internalQuery'], // q
  [0x57, 'where'], // W
  [0x73, 'schema'], // s
  [0x74, 'table'], // t
  [0x63, 'column'], // c
  [0x64, 'dataType'], // d
  [0x6e, 'constraint'], // n
  [0x46, 'file'], // F
  [0x4c, 'line'], // L
  [0x52, 'routine'], // R
];

/** Field code byte → NoticeFields key; a flat table beats a Map for one-byte keys. */
const NOTICE_KEY_BY_CODE: (Exclude<keyof NoticeFields, 'unknown'> | undefined)[] = new Array(256);
for (const [code, key] of NOTICE_CODES) NOTICE_KEY_BY_CODE[code] = key;

function decodeNotice(body: Uint8Array, type: 'ErrorResponse' | 'NoticeResponse'): BackendMessage {
  const r = new BodyReader(body, type);
  const fields: NoticeFields = {};
  for (;;) {
    const code = r.u8();
    if (code === 0) break;
    const value = r.cstring();
    const key = NOTICE_KEY_BY_CODE[code];
    // A repeated code keeps the last value, as the protocol gives no meaning to repeats.
    if (key !== undefined) fields[key] = value;
    else {
      fields.unknown ??= {};
      fields.unknown[String.fromCharCode(code)] = value;
    }
  }
  r.done();
  return { type, fields };
}

function decodeFunctionCallResponse(body: Uint8Array): BackendMessage {
  const r = new BodyReader(body, 'FunctionCallResponse');
  const len = r.i32();
  if (len < -1) r.fail(`invalid result length ${len}`);
  const result = len === -1 ? null : r.bytes(len);
  r.done();
  return { type: 'FunctionCallResponse', result };
}

function decodeNegotiateProtocolVersion(body: Uint8Array): BackendMessage {
  const r = new BodyReader(body, 'NegotiateProtocolVersion');
  const version = r.u32();
  const count = r.i32();
  if (count < 0) r.fail(`negative option count ${count}`);
  // Each name takes at least its NUL terminator.
  if (count > r.remaining) r.fail(`${count} options cannot fit in ${body.length} bytes`);
  const unrecognizedOptions = new Array<string>(count);
  for (let i = 0; i < count; i++) unrecognizedOptions[i] = r.cstring();
  r.done();
  return { type: 'NegotiateProtocolVersion', version, unrecognizedOptions };
}

function decodeParameterDescription(body: Uint8Array): BackendMessage {
  const r = new BodyReader(body, 'ParameterDescription');
  // Sent as Int16 but a statement may have up to 65535 parameters, so (like libpq) read it unsigned.
  const count = r.u16();
  if (count * 4 > r.remaining) r.fail(`${count} parameters cannot fit in ${body.length} bytes`);
  const typeOids = new Array<number>(count);
  for (let i = 0; i < count; i++) typeOids[i] = r.u32();
  r.done();
  return { type: 'ParameterDescription', typeOids };
}

function decodeRowDescription(body: Uint8Array): BackendMessage {
  const r = new BodyReader(body, 'RowDescription');
  const count = r.i16();
  if (count < 0) r.fail(`negative field count ${count}`);
  // Each field is at least a NUL (empty name) plus 18 bytes of fixed attributes.
  if (count * 19 > r.remaining) r.fail(`${count} fields cannot fit in ${body.length} bytes`);
  const fields = new Array<RowDescriptionField>(count);
  for (let i = 0; i < count; i++) {
    fields[i] = {
      name: r.cstring(),
      tableOid: r.u32(),
      columnAttr: r.i16(),
      typeOid: r.u32(),
      typeSize: r.i16(),
      typeModifier: r.i32(),
      format: r.i16(),
    };
  }
  r.done();
  return { type: 'RowDescription', fields };
}

/**
 * Decodes one backend message. Byte arrays in the result are views valid until the next
 * `Framer.push()`. Throws ProtocolError (and nothing else) for any malformed or unknown message.
 *
 * BackendKeyData accepts 4..256-byte keys whatever the protocol version: enforcing exactly 4 bytes
 * under 3.0 is the connection's job, as only it knows the negotiated version.
 */
export function decodeBackend(frame: Frame): BackendMessage {
  const body = frame.body;
  switch (frame.type) {
    case BackendType.DataRow:
      return decodeDataRow(body);
    case BackendType.CopyData:
      return { type: 'CopyData', data: body };
    case BackendType.CommandComplete: {
      const r = new BodyReader(body, 'CommandComplete');
      const tag = r.cstring();
      r.done();
      return { type: 'CommandComplete', tag };
    }
    case BackendType.ReadyForQuery: {
      if (body.length !== 1) {
        fail(
          'ReadyForQuery',
          body.length === 0 ? 'truncated' : `${body.length - 1} unexpected trailing byte(s)`,
        );
      }
      const s = body[0]!;
      if (s === 0x49) return { type: 'ReadyForQuery', status: 'I' };
      if (s === 0x54) return { type: 'ReadyForQuery', status: 'T' };
      if (s === 0x45) return { type: 'ReadyForQuery', status: 'E' };
      return fail('ReadyForQuery', `invalid transaction status ${describeType(s)}`);
    }
    case BackendType.RowDescription:
      return decodeRowDescription(body);
    case BackendType.ParseComplete:
      return empty(body, 'ParseComplete');
    case BackendType.BindComplete:
      return empty(body, 'BindComplete');
    case BackendType.CloseComplete:
      return empty(body, 'CloseComplete');
    case BackendType.NoData:
      return empty(body, 'NoData');
    case BackendType.PortalSuspended:
      return empty(body, 'PortalSuspended');
    case BackendType.EmptyQueryResponse:
      return empty(body, 'EmptyQueryResponse');
    case BackendType.CopyDone:
      return empty(body, 'CopyDone');
    case BackendType.ParameterDescription:
      return decodeParameterDescription(body);
    case BackendType.ErrorResponse:
      return decodeNotice(body, 'ErrorResponse');
    case BackendType.NoticeResponse:
      return decodeNotice(body, 'NoticeResponse');
    case BackendType.Authentication:
      return decodeAuthentication(body);
    case BackendType.ParameterStatus: {
      const r = new BodyReader(body, 'ParameterStatus');
      const name = r.cstring();
      const value = r.cstring();
      r.done();
      return { type: 'ParameterStatus', name, value };
    }
    case BackendType.BackendKeyData:
      return decodeBackendKeyData(body);
    case BackendType.NotificationResponse: {
      const r = new BodyReader(body, 'NotificationResponse');
      const processId = r.i32();
      const channel = r.cstring();
      const payload = r.cstring();
      r.done();
      return { type: 'NotificationResponse', processId, channel, payload };
    }
    case BackendType.CopyInResponse:
      return decodeCopyResponse(body, 'CopyInResponse');
    case BackendType.CopyOutResponse:
      return decodeCopyResponse(body, 'CopyOutResponse');
    case BackendType.CopyBothResponse:
      return decodeCopyResponse(body, 'CopyBothResponse');
    case BackendType.FunctionCallResponse:
      return decodeFunctionCallResponse(body);
    case BackendType.NegotiateProtocolVersion:
      return decodeNegotiateProtocolVersion(body);
    default:
      throw new ProtocolError(`unknown backend message type ${describeType(frame.type)}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Encoding. Values the wire cannot carry are refused with a ProtocolError (as Writer.cstring does
// for NUL), rather than silently wrapped into a message the peer would misread.

const refuse = (what: string, reason: string): never => {
  throw new ProtocolError(`cannot encode ${what}: ${reason}`);
};

/** Writes a DataRow: the hot path of a server streaming rows. `null` is SQL NULL. */
export function encodeDataRow(w: Writer, fields: readonly (Uint8Array | null)[]): void {
  const n = fields.length;
  if (n > 0x7fff) refuse('DataRow', `${n} fields exceed the Int16 count`);
  w.begin(BackendType.DataRow).i16(n);
  for (let i = 0; i < n; i++) {
    const f = fields[i];
    if (f == null) w.i32(-1);
    else w.i32(f.length).bytes(f);
  }
  w.end();
}

/**
 * Writes a whole ErrorResponse/NoticeResponse. Unknown codes are validated before `begin()`, so a
 * refusal leaves the Writer with no half-written message open.
 */
function encodeNotice(w: Writer, type: number, fields: NoticeFields, what: string): void {
  const unknown = fields.unknown;
  const unknownFields = unknown === undefined ? [] : Object.entries(unknown);
  for (const [code] of unknownFields) {
    const c = code.charCodeAt(0);
    // One byte, not NUL (the terminator) and not a known code (it would be written twice).
    if (code.length !== 1 || c === 0 || c > 0xff || NOTICE_KEY_BY_CODE[c] !== undefined) {
      refuse(what, `invalid field code ${JSON.stringify(code)}`);
    }
  }
  w.begin(type);
  for (const [code, key] of NOTICE_CODES) {
    const v = fields[key];
    if (v !== undefined) w.u8(code).cstring(v);
  }
  for (const [code, v] of unknownFields) w.u8(code.charCodeAt(0)).cstring(v);
  w.u8(0).end();
}

function encodeCopyResponse(w: Writer, type: number, what: string, format: number, columns: number[]): void {
  if (format !== 0 && format !== 1) refuse(what, `invalid overall format ${format}`);
  if (columns.length > 0x7fff) refuse(what, `${columns.length} columns exceed the Int16 count`);
  w.begin(type).u8(format).i16(columns.length);
  for (const f of columns) w.i16(f);
  w.end();
}

const authCode = (w: Writer, code: number): Writer => w.begin(BackendType.Authentication).i32(code);

/** Writes one backend message; the inverse of `decodeBackend`. */
export function encodeBackend(w: Writer, msg: BackendMessage): void {
  switch (msg.type) {
    case 'DataRow':
      encodeDataRow(w, msg.fields);
      return;
    case 'CopyData':
      w.begin(BackendType.CopyData).bytes(msg.data).end();
      return;
    case 'AuthenticationOk':
      authCode(w, AuthCode.Ok).end();
      return;
    case 'AuthenticationKerberosV5':
      authCode(w, AuthCode.KerberosV5).end();
      return;
    case 'AuthenticationCleartextPassword':
      authCode(w, AuthCode.CleartextPassword).end();
      return;
    case 'AuthenticationMD5Password':
      if (msg.salt.length !== 4) refuse(msg.type, `salt is ${msg.salt.length} bytes, expected 4`);
      authCode(w, AuthCode.MD5Password).bytes(msg.salt).end();
      return;
    case 'AuthenticationGSS':
      authCode(w, AuthCode.GSS).end();
      return;
    case 'AuthenticationGSSContinue':
      authCode(w, AuthCode.GSSContinue).bytes(msg.data).end();
      return;
    case 'AuthenticationSSPI':
      authCode(w, AuthCode.SSPI).end();
      return;
    case 'AuthenticationSASL':
      // An empty name would end the list early.
      if (msg.mechanisms.includes('')) refuse(msg.type, 'empty mechanism name');
      authCode(w, AuthCode.SASL);
      for (const m of msg.mechanisms) w.cstring(m);
      w.u8(0).end();
      return;
    case 'AuthenticationSASLContinue':
      authCode(w, AuthCode.SASLContinue).bytes(msg.data).end();
      return;
    case 'AuthenticationSASLFinal':
      authCode(w, AuthCode.SASLFinal).bytes(msg.data).end();
      return;
    case 'BackendKeyData': {
      const n = msg.secretKey.length;
      if (n < MIN_CANCEL_KEY_LENGTH || n > MAX_CANCEL_KEY_LENGTH) {
        refuse(
          msg.type,
          `cancel key length ${n} is outside ${MIN_CANCEL_KEY_LENGTH}..${MAX_CANCEL_KEY_LENGTH}`,
        );
      }
      w.begin(BackendType.BackendKeyData).i32(msg.processId).bytes(msg.secretKey).end();
      return;
    }
    case 'BindComplete':
      w.begin(BackendType.BindComplete).end();
      return;
    case 'CloseComplete':
      w.begin(BackendType.CloseComplete).end();
      return;
    case 'CommandComplete':
      w.begin(BackendType.CommandComplete).cstring(msg.tag).end();
      return;
    case 'CopyDone':
      w.begin(BackendType.CopyDone).end();
      return;
    case 'CopyInResponse':
      encodeCopyResponse(w, BackendType.CopyInResponse, msg.type, msg.format, msg.columnFormats);
      return;
    case 'CopyOutResponse':
      encodeCopyResponse(w, BackendType.CopyOutResponse, msg.type, msg.format, msg.columnFormats);
      return;
    case 'CopyBothResponse':
      encodeCopyResponse(w, BackendType.CopyBothResponse, msg.type, msg.format, msg.columnFormats);
      return;
    case 'EmptyQueryResponse':
      w.begin(BackendType.EmptyQueryResponse).end();
      return;
    case 'ErrorResponse':
      encodeNotice(w, BackendType.ErrorResponse, msg.fields, msg.type);
      return;
    case 'NoticeResponse':
      encodeNotice(w, BackendType.NoticeResponse, msg.fields, msg.type);
      return;
    case 'FunctionCallResponse':
      w.begin(BackendType.FunctionCallResponse);
      if (msg.result === null) w.i32(-1);
      else w.i32(msg.result.length).bytes(msg.result);
      w.end();
      return;
    case 'NegotiateProtocolVersion':
      w.begin(BackendType.NegotiateProtocolVersion).u32(msg.version).i32(msg.unrecognizedOptions.length);
      for (const o of msg.unrecognizedOptions) w.cstring(o);
      w.end();
      return;
    case 'NoData':
      w.begin(BackendType.NoData).end();
      return;
    case 'NotificationResponse':
      w.begin(BackendType.NotificationResponse)
        .i32(msg.processId)
        .cstring(msg.channel)
        .cstring(msg.payload)
        .end();
      return;
    case 'ParameterDescription': {
      const n = msg.typeOids.length;
      if (n > 0xffff) refuse(msg.type, `${n} parameters exceed the 16-bit count`);
      w.begin(BackendType.ParameterDescription).u16(n);
      for (const oid of msg.typeOids) w.u32(oid);
      w.end();
      return;
    }
    case 'ParameterStatus':
      w.begin(BackendType.ParameterStatus).cstring(msg.name).cstring(msg.value).end();
      return;
    case 'ParseComplete':
      w.begin(BackendType.ParseComplete).end();
      return;
    case 'PortalSuspended':
      w.begin(BackendType.PortalSuspended).end();
      return;
    case 'ReadyForQuery': {
      const s = msg.status;
      if (s !== 'I' && s !== 'T' && s !== 'E') refuse(msg.type, `invalid transaction status ${String(s)}`);
      w.begin(BackendType.ReadyForQuery).u8(s.charCodeAt(0)).end();
      return;
    }
    case 'RowDescription': {
      const fields = msg.fields;
      if (fields.length > 0x7fff) refuse(msg.type, `${fields.length} fields exceed the Int16 count`);
      w.begin(BackendType.RowDescription).i16(fields.length);
      for (const f of fields) {
        w.cstring(f.name)
          .u32(f.tableOid)
          .i16(f.columnAttr)
          .u32(f.typeOid)
          .i16(f.typeSize)
          .i32(f.typeModifier)
          .i16(f.format);
      }
      w.end();
      return;
    }
    default: {
      // Exhaustiveness: adding a variant without an encoder fails to type-check here.
      const unhandled: never = msg;
      refuse('message', `unknown type ${JSON.stringify((unhandled as { type: unknown }).type)}`);
    }
  }
}
