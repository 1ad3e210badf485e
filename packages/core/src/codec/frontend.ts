/**
 * Typed frontend (client → server) messages: encoders for the client, a decoder for servers, proxies
 * and tests.
 *
 * Encoders validate their input before `Writer.begin()`, so a refused call (NUL in a string, a count
 * beyond the Int16 field, a value outside its integer field) leaves the Writer as it was instead of
 * holding a half-written message. Decoders check every count against the bytes actually present
 * before looping, reject trailing bytes, and return zero-copy views for byte fields (valid as long as
 * the frame body is).
 */
import { ProtocolError } from '../errors.ts';
import { FrontendType } from './constants.ts';
import type { Frame } from './framer.ts';
import { BodyReader } from './reader.ts';
import type { Writer } from './writer.ts';

/** Describe/Close target: a prepared statement or a portal. */
export type DescribeTarget = 'S' | 'P';

/** Every message a client can send after the startup packet (protocol 3.0 and 3.2). */
export type FrontendMessage =
  /** 'p' with a cleartext or MD5 password (NUL-terminated). */
  | { type: 'PasswordMessage'; password: string }
  /** 'p' answering AuthenticationSASL; `data` null is length -1 ("no initial response"), unlike empty. */
  | { type: 'SASLInitialResponse'; mechanism: string; data: Uint8Array | null }
  /** 'p' answering AuthenticationSASLContinue. */
  | { type: 'SASLResponse'; data: Uint8Array }
  /** 'p' answering AuthenticationGSS/GSSContinue/SSPI. */
  | { type: 'GSSResponse'; data: Uint8Array }
  | { type: 'Query'; sql: string }
  /** `name` '' is the unnamed statement; `paramTypes` are uint32 OIDs (0 = let the server infer). */
  | { type: 'Parse'; name: string; query: string; paramTypes: number[] }
  /**
   * Format codes are Int16: none (all text), one (applies to all) or one per value. A null param is
   * SQL NULL (length -1).
   */
  | {
      type: 'Bind';
      portal: string;
      statement: string;
      paramFormats: number[];
      params: (Uint8Array | null)[];
      resultFormats: number[];
    }
  | { type: 'Describe'; target: DescribeTarget; name: string }
  /** `maxRows` 0 = no limit. */
  | { type: 'Execute'; portal: string; maxRows: number }
  | { type: 'Sync' }
  | { type: 'Flush' }
  | { type: 'Close'; target: DescribeTarget; name: string }
  | { type: 'CopyData'; data: Uint8Array }
  | { type: 'CopyDone' }
  | { type: 'CopyFail'; message: string }
  /** `oid` is the function's uint32 OID. */
  | {
      type: 'FunctionCall';
      oid: number;
      argFormats: number[];
      args: (Uint8Array | null)[];
      resultFormat: number;
    }
  | { type: 'Terminate' };

export type FrontendMessageType = FrontendMessage['type'];
/** The message variant with the given `type`, e.g. `FrontendMessageOf<'Bind'>`. */
export type FrontendMessageOf<T extends FrontendMessageType> = Extract<FrontendMessage, { type: T }>;

/** Which of the four 'p' messages the server expects, given the authentication request it sent. */
export type PasswordMessageKind = 'password' | 'sasl-initial' | 'sasl' | 'gss';

export interface FrontendDecodeContext {
  /** Required to decode a 'p' message: its layout depends on the authentication exchange. */
  passwordMessage?: PasswordMessageKind;
}

// ---------------------------------------------------------------------------------------------------
// Input validation (before begin(): the Writer cannot abandon an open message)

const fail = (msg: string): never => {
  throw new ProtocolError(msg);
};

const checkCString = (s: string, what: string): void => {
  if (s.includes('\0')) fail(`${what} contains a NUL byte and cannot be sent`);
};

const checkInt = (v: number, min: number, max: number, what: string): void => {
  if (!Number.isInteger(v) || v < min || v > max) fail(`${what} ${v} is out of range (${min} to ${max})`);
};

/** Counts are Int16 on the wire, read back as unsigned by the server (libpq's limit is 65535 too). */
const MAX_COUNT = 0xffff;

const checkCount = (n: number, what: string): void => {
  if (n > MAX_COUNT) fail(`too many ${what}: ${n} (at most ${MAX_COUNT})`);
};

const checkFormats = (formats: readonly number[], what: string): void => {
  checkCount(formats.length, what);
  for (const f of formats) checkInt(f, -0x8000, 0x7fff, `${what} entry`);
};

const checkValues = (values: readonly (Uint8Array | null)[], what: string): void => {
  checkCount(values.length, what);
  // Int32 length: larger values cannot be framed (and exceed the server's 1 GiB limit anyway).
  for (const v of values) if (v !== null && v.length > 0x7fff_ffff) fail(`${what} entry is too large`);
};

const checkOid = (oid: number, what: string): void => checkInt(oid, 0, 0xffff_ffff, what);

/** A body beyond Int32 would wrap the length word and desynchronise the stream. */
const checkBody = (data: Uint8Array, what: string): void => {
  if (data.length > 0x7fff_ffff - 4) fail(`${what} of ${data.length} bytes is too large for one message`);
};

// ---------------------------------------------------------------------------------------------------
// Encoders

/** Hot path: one header and the SQL text, no intermediate objects. */
export function encodeQuery(w: Writer, sql: string): void {
  checkCString(sql, 'query');
  w.begin(FrontendType.Query).text(sql).u8(0).end();
}

/** Hot path: one header and the bytes. */
export function encodeCopyData(w: Writer, data: Uint8Array): void {
  checkBody(data, 'CopyData');
  w.begin(FrontendType.CopyData).bytes(data).end();
}

export function encodeCopyDone(w: Writer): void {
  w.begin(FrontendType.CopyDone).end();
}

export function encodeCopyFail(w: Writer, message: string): void {
  checkCString(message, 'CopyFail message');
  w.begin(FrontendType.CopyFail).text(message).u8(0).end();
}

export function encodeSync(w: Writer): void {
  w.begin(FrontendType.Sync).end();
}

export function encodeFlush(w: Writer): void {
  w.begin(FrontendType.Flush).end();
}

export function encodeTerminate(w: Writer): void {
  w.begin(FrontendType.Terminate).end();
}

export function encodePasswordMessage(w: Writer, password: string): void {
  checkCString(password, 'password');
  w.begin(FrontendType.Password).text(password).u8(0).end();
}

export function encodeSASLInitialResponse(w: Writer, mechanism: string, data: Uint8Array | null): void {
  checkCString(mechanism, 'SASL mechanism name');
  w.begin(FrontendType.Password).text(mechanism).u8(0);
  if (data === null) w.i32(-1);
  else w.i32(data.length).bytes(data);
  w.end();
}

export function encodeSASLResponse(w: Writer, data: Uint8Array): void {
  checkBody(data, 'SASL response');
  w.begin(FrontendType.Password).bytes(data).end();
}

export function encodeGSSResponse(w: Writer, data: Uint8Array): void {
  checkBody(data, 'GSS response');
  w.begin(FrontendType.Password).bytes(data).end();
}

export function encodeParse(
  w: Writer,
  name: string,
  query: string,
  paramTypes: readonly number[] = [],
): void {
  checkCString(name, 'statement name');
  checkCString(query, 'query');
  checkCount(paramTypes.length, 'parameter types');
  for (const oid of paramTypes) checkOid(oid, 'parameter type OID');
  w.begin(FrontendType.Parse).text(name).u8(0).text(query).u8(0).i16(paramTypes.length);
  for (const oid of paramTypes) w.u32(oid);
  w.end();
}

export function encodeBind(w: Writer, bind: Omit<FrontendMessageOf<'Bind'>, 'type'>): void {
  checkCString(bind.portal, 'portal name');
  checkCString(bind.statement, 'statement name');
  checkFormats(bind.paramFormats, 'parameter formats');
  checkValues(bind.params, 'parameters');
  checkFormats(bind.resultFormats, 'result formats');
  w.begin(FrontendType.Bind).text(bind.portal).u8(0).text(bind.statement).u8(0);
  writeFormats(w, bind.paramFormats);
  writeValues(w, bind.params);
  writeFormats(w, bind.resultFormats);
  w.end();
}

export function encodeDescribe(w: Writer, target: DescribeTarget, name: string): void {
  checkTarget(target);
  checkCString(name, target === 'S' ? 'statement name' : 'portal name');
  w.begin(FrontendType.Describe).u8(target.charCodeAt(0)).text(name).u8(0).end();
}

export function encodeExecute(w: Writer, portal: string, maxRows = 0): void {
  checkCString(portal, 'portal name');
  checkInt(maxRows, -0x8000_0000, 0x7fff_ffff, 'maxRows');
  w.begin(FrontendType.Execute).text(portal).u8(0).i32(maxRows).end();
}

export function encodeClose(w: Writer, target: DescribeTarget, name: string): void {
  checkTarget(target);
  checkCString(name, target === 'S' ? 'statement name' : 'portal name');
  w.begin(FrontendType.Close).u8(target.charCodeAt(0)).text(name).u8(0).end();
}

export function encodeFunctionCall(w: Writer, call: Omit<FrontendMessageOf<'FunctionCall'>, 'type'>): void {
  checkOid(call.oid, 'function OID');
  checkFormats(call.argFormats, 'argument formats');
  checkValues(call.args, 'arguments');
  checkInt(call.resultFormat, -0x8000, 0x7fff, 'result format');
  w.begin(FrontendType.FunctionCall).u32(call.oid);
  writeFormats(w, call.argFormats);
  writeValues(w, call.args);
  w.i16(call.resultFormat).end();
}

function checkTarget(target: string): void {
  // Typed, but callers may come from untyped code; a wrong byte would change the message's meaning.
  if (target !== 'S' && target !== 'P') fail(`invalid describe/close target "${target}" (must be S or P)`);
}

function writeFormats(w: Writer, formats: readonly number[]): void {
  w.i16(formats.length);
  for (const f of formats) w.i16(f);
}

function writeValues(w: Writer, values: readonly (Uint8Array | null)[]): void {
  w.i16(values.length);
  for (const v of values) {
    if (v === null) w.i32(-1);
    else w.i32(v.length).bytes(v);
  }
}

/** Encodes any frontend message; the per-message encoders above avoid building the object. */
export function encodeFrontend(w: Writer, msg: FrontendMessage): void {
  switch (msg.type) {
    case 'PasswordMessage':
      encodePasswordMessage(w, msg.password);
      return;
    case 'SASLInitialResponse':
      encodeSASLInitialResponse(w, msg.mechanism, msg.data);
      return;
    case 'SASLResponse':
      encodeSASLResponse(w, msg.data);
      return;
    case 'GSSResponse':
      encodeGSSResponse(w, msg.data);
      return;
    case 'Query':
      encodeQuery(w, msg.sql);
      return;
    case 'Parse':
      encodeParse(w, msg.name, msg.query, msg.paramTypes);
      return;
    case 'Bind':
      encodeBind(w, msg);
      return;
    case 'Describe':
      encodeDescribe(w, msg.target, msg.name);
      return;
    case 'Execute':
      encodeExecute(w, msg.portal, msg.maxRows);
      return;
    case 'Sync':
      encodeSync(w);
      return;
    case 'Flush':
      encodeFlush(w);
      return;
    case 'Close':
      encodeClose(w, msg.target, msg.name);
      return;
    case 'CopyData':
      encodeCopyData(w, msg.data);
      return;
    case 'CopyDone':
      encodeCopyDone(w);
      return;
    case 'CopyFail':
      encodeCopyFail(w, msg.message);
      return;
    case 'FunctionCall':
      encodeFunctionCall(w, msg);
      return;
    case 'Terminate':
      encodeTerminate(w);
      return;
  }
}

// ---------------------------------------------------------------------------------------------------
// Decoder

const describeType = (t: number): string =>
  t >= 0x20 && t < 0x7f ? `"${String.fromCharCode(t)}"` : `0x${t.toString(16).padStart(2, '0')}`;

/** An Int16 count, checked against the bytes left (each entry needs at least `minEntrySize`). */
function readCount(r: BodyReader, minEntrySize: number, what: string): number {
  const n = r.u16();
  if (n * minEntrySize > r.remaining) r.fail(`${n} ${what} claimed but only ${r.remaining} bytes left`);
  return n;
}

function readFormats(r: BodyReader, what: string): number[] {
  const n = readCount(r, 2, what);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(r.i16());
  return out;
}

function readValues(r: BodyReader, what: string): (Uint8Array | null)[] {
  const n = readCount(r, 4, what);
  const out: (Uint8Array | null)[] = [];
  for (let i = 0; i < n; i++) {
    const len = r.i32();
    if (len === -1) out.push(null);
    else if (len < 0) r.fail(`invalid length ${len} of ${what} entry ${i}`);
    else out.push(r.bytes(len));
  }
  return out;
}

function readTarget(r: BodyReader): DescribeTarget {
  const b = r.u8();
  if (b === 0x53) return 'S';
  if (b === 0x50) return 'P';
  return r.fail(`invalid target ${describeType(b)} (expected "S" or "P")`);
}

function decodePassword(body: Uint8Array, kind: PasswordMessageKind | undefined): FrontendMessage {
  switch (kind) {
    case 'password': {
      const r = new BodyReader(body, 'PasswordMessage');
      const password = r.cstring();
      r.done();
      return { type: 'PasswordMessage', password };
    }
    case 'sasl-initial': {
      const r = new BodyReader(body, 'SASLInitialResponse');
      const mechanism = r.cstring();
      const len = r.i32();
      if (len < -1) r.fail(`invalid length ${len} of initial response`);
      const data = len === -1 ? null : r.bytes(len);
      r.done();
      return { type: 'SASLInitialResponse', mechanism, data };
    }
    case 'sasl':
      return { type: 'SASLResponse', data: body };
    case 'gss':
      return { type: 'GSSResponse', data: body };
    case undefined:
      return fail('unexpected password message ("p"): no authentication exchange is in progress');
  }
}

/**
 * Decodes one frame from `Framer.next()`. A 'p' message needs `context.passwordMessage` (the four
 * authentication responses share the type byte). Throws ProtocolError on any malformed body, trailing
 * bytes or an unknown type.
 */
export function decodeFrontend(frame: Frame, context: FrontendDecodeContext = {}): FrontendMessage {
  const { type, body } = frame;
  switch (type) {
    case FrontendType.Password:
      return decodePassword(body, context.passwordMessage);
    case FrontendType.Query: {
      const r = new BodyReader(body, 'Query');
      const sql = r.cstring();
      r.done();
      return { type: 'Query', sql };
    }
    case FrontendType.Parse: {
      const r = new BodyReader(body, 'Parse');
      const name = r.cstring();
      const query = r.cstring();
      const n = readCount(r, 4, 'parameter types');
      const paramTypes: number[] = [];
      for (let i = 0; i < n; i++) paramTypes.push(r.u32());
      r.done();
      return { type: 'Parse', name, query, paramTypes };
    }
    case FrontendType.Bind: {
      const r = new BodyReader(body, 'Bind');
      const portal = r.cstring();
      const statement = r.cstring();
      const paramFormats = readFormats(r, 'parameter formats');
      const params = readValues(r, 'parameters');
      const resultFormats = readFormats(r, 'result formats');
      r.done();
      return { type: 'Bind', portal, statement, paramFormats, params, resultFormats };
    }
    case FrontendType.Describe: {
      const r = new BodyReader(body, 'Describe');
      const target = readTarget(r);
      const name = r.cstring();
      r.done();
      return { type: 'Describe', target, name };
    }
    case FrontendType.Execute: {
      const r = new BodyReader(body, 'Execute');
      const portal = r.cstring();
      const maxRows = r.i32();
      r.done();
      return { type: 'Execute', portal, maxRows };
    }
    case FrontendType.Close: {
      const r = new BodyReader(body, 'Close');
      const target = readTarget(r);
      const name = r.cstring();
      r.done();
      return { type: 'Close', target, name };
    }
    case FrontendType.CopyData:
      return { type: 'CopyData', data: body };
    case FrontendType.CopyFail: {
      const r = new BodyReader(body, 'CopyFail');
      const message = r.cstring();
      r.done();
      return { type: 'CopyFail', message };
    }
    case FrontendType.FunctionCall: {
      const r = new BodyReader(body, 'FunctionCall');
      const oid = r.u32();
      const argFormats = readFormats(r, 'argument formats');
      const args = readValues(r, 'arguments');
      const resultFormat = r.i16();
      r.done();
      return { type: 'FunctionCall', oid, argFormats, args, resultFormat };
    }
    case FrontendType.Sync:
      return empty(body, 'Sync', { type: 'Sync' });
    case FrontendType.Flush:
      return empty(body, 'Flush', { type: 'Flush' });
    case FrontendType.CopyDone:
      return empty(body, 'CopyDone', { type: 'CopyDone' });
    case FrontendType.Terminate:
      return empty(body, 'Terminate', { type: 'Terminate' });
    default:
      return fail(`invalid frontend message type ${describeType(type)}`);
  }
}

function empty<M extends FrontendMessage>(body: Uint8Array, what: string, msg: M): M {
  if (body.length !== 0) new BodyReader(body, what).done();
  return msg;
}
