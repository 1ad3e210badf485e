/**
 * One error hierarchy for the whole connection layer. Every failure a caller can observe is one of
 * these, so `instanceof PgConnError` (or the `kind` discriminant) covers everything.
 */

export type PgConnErrorKind =
  | 'option'
  | 'protocol'
  | 'connection'
  | 'tls'
  | 'auth'
  | 'server'
  | 'unsupported';

export abstract class PgConnError extends Error {
  abstract readonly kind: PgConnErrorKind;
  override name = 'PgConnError';
}

/** An invalid connection option; the message follows libpq's wording where libpq has one. */
export class OptionError extends PgConnError {
  readonly kind = 'option';
  override name = 'OptionError';
}

/** The peer sent bytes that violate the protocol (bad length, unknown type, truncated body...). */
export class ProtocolError extends PgConnError {
  readonly kind = 'protocol';
  override name = 'ProtocolError';
}

/** The connection could not be made or was lost (refused, reset, timed out, closed early). */
export class ConnectionError extends PgConnError {
  readonly kind = 'connection';
  override name = 'ConnectionError';
  /**
   * 'connect': the socket could not be opened; 'timeout': connect_timeout expired. Both move a
   * multi-host connect on to the next address, as libpq does; other failures end it.
   */
  readonly phase: 'connect' | 'timeout' | 'session';
  constructor(message: string, phase: 'connect' | 'timeout' | 'session' = 'session') {
    super(message);
    this.phase = phase;
  }
}

/** TLS negotiation or certificate verification failed. */
export class TlsError extends PgConnError {
  readonly kind = 'tls';
  override name = 'TlsError';
}

/** Authentication failed on our side (unsupported method, require_auth, channel binding, SCRAM proof). */
export class AuthError extends PgConnError {
  readonly kind = 'auth';
  override name = 'AuthError';
}

/** A capability the runtime or this library does not provide (e.g. GSSAPI encryption). */
export class UnsupportedError extends PgConnError {
  readonly kind = 'unsupported';
  override name = 'UnsupportedError';
}

/** Fields of an ErrorResponse / NoticeResponse, keyed by their protocol names. */
export interface NoticeFields {
  /** 'S': localized severity. */
  severity?: string;
  /** 'V': severity, never localized (9.6+). */
  severityNonLocalized?: string;
  /** 'C': SQLSTATE code. */
  code?: string;
  /** 'M': primary message. */
  message?: string;
  /** 'D' */
  detail?: string;
  /** 'H' */
  hint?: string;
  /** 'P': cursor position (decimal string as sent). */
  position?: string;
  /** 'p' */
  internalPosition?: string;
  /** 'q' */
  internalQuery?: string;
  /** 'W' */
  where?: string;
  /** 's' */
  schema?: string;
  /** 't' */
  table?: string;
  /** 'c' */
  column?: string;
  /** 'd' */
  dataType?: string;
  /** 'n' */
  constraint?: string;
  /** 'F' */
  file?: string;
  /** 'L' */
  line?: string;
  /** 'R' */
  routine?: string;
  /** Field codes this library does not know, kept so nothing the server said is lost. */
  unknown?: Record<string, string>;
}

/** The server reported an error (ErrorResponse); carries every field, including the SQLSTATE. */
export class ServerError extends PgConnError {
  readonly kind = 'server';
  override name = 'ServerError';
  readonly fields: NoticeFields;
  constructor(fields: NoticeFields, prefix?: string) {
    const text = `${fields.severity ?? 'ERROR'}:  ${fields.message ?? '(no message)'}`;
    super(prefix ? `${prefix}: ${text}` : text);
    this.fields = fields;
  }
  /** SQLSTATE, e.g. '28P01'. */
  get code(): string | undefined {
    return this.fields.code;
  }
}
