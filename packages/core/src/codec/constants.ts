/** Wire constants (pqcomm.h / protocol.h). */

export const protocolVersion = (major: number, minor: number): number => ((major << 16) | minor) >>> 0;

export const PROTOCOL_3_0 = 0x0003_0000;
export const PROTOCOL_3_2 = 0x0003_0002;
/** Reserved, never sent or accepted. */
export const PROTOCOL_3_1 = 0x0003_0001;
/** PostgreSQL 19's "grease" version, used to test that servers negotiate down. */
export const PROTOCOL_GREASE = 0x0003_270f;

export const CANCEL_REQUEST_CODE = 80877102; // 1234.5678
export const SSL_REQUEST_CODE = 80877103; // 1234.5679
export const GSSENC_REQUEST_CODE = 80877104; // 1234.5680

/** Largest startup packet body the server accepts (excluding the length word). */
export const MAX_STARTUP_PACKET_LENGTH = 10000;
/** Cancel keys: 4 bytes under 3.0, up to 256 bytes under 3.2. */
export const MAX_CANCEL_KEY_LENGTH = 256;

/** ALPN protocol name PostgreSQL uses for TLS (required for direct TLS). */
export const ALPN_POSTGRESQL = 'postgresql';

/** Authentication request codes carried by 'R' messages. */
export const AuthCode = {
  Ok: 0,
  KerberosV5: 2,
  CleartextPassword: 3,
  MD5Password: 5,
  GSS: 7,
  GSSContinue: 8,
  SSPI: 9,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;

/** Type bytes of backend (server → client) messages. */
export const BackendType = {
  Authentication: 0x52, // R
  BackendKeyData: 0x4b, // K
  BindComplete: 0x32, // 2
  CloseComplete: 0x33, // 3
  CommandComplete: 0x43, // C
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyInResponse: 0x47, // G
  CopyOutResponse: 0x48, // H
  CopyBothResponse: 0x57, // W
  DataRow: 0x44, // D
  EmptyQueryResponse: 0x49, // I
  ErrorResponse: 0x45, // E
  FunctionCallResponse: 0x56, // V
  NegotiateProtocolVersion: 0x76, // v
  NoData: 0x6e, // n
  NoticeResponse: 0x4e, // N
  NotificationResponse: 0x41, // A
  ParameterDescription: 0x74, // t
  ParameterStatus: 0x53, // S
  ParseComplete: 0x31, // 1
  PortalSuspended: 0x73, // s
  ReadyForQuery: 0x5a, // Z
  RowDescription: 0x54, // T
} as const;

/** Type bytes of frontend (client → server) messages. */
export const FrontendType = {
  /** PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse share 'p'. */
  Password: 0x70, // p
  Query: 0x51, // Q
  Parse: 0x50, // P
  Bind: 0x42, // B
  Describe: 0x44, // D
  Execute: 0x45, // E
  Sync: 0x53, // S
  Flush: 0x48, // H
  Close: 0x43, // C
  CopyData: 0x64, // d
  CopyDone: 0x63, // c
  CopyFail: 0x66, // f
  FunctionCall: 0x46, // F
  Terminate: 0x58, // X
} as const;

/** One-byte, unframed replies to SSLRequest / GSSENCRequest. */
export const NegotiationReply = {
  SSLAccepted: 0x53, // S
  Refused: 0x4e, // N
  GSSAccepted: 0x47, // G
  Error: 0x45, // E
} as const;
