/** Decodes a real PostgreSQL 18.4 handshake (captured bytes) with the codecs, split at every offset. */
import { describe, expect, it } from 'vitest';
import { decodeBackend } from '../src/codec/backend.ts';
import { Framer } from '../src/codec/framer.ts';
import { decodeStartupPacket, STARTUP_MAX_LENGTH, STARTUP_MIN_LENGTH } from '../src/codec/startup.ts';
import { capturedResponse, capturedStartup } from './fixtures/captured-handshake.ts';

const hex = (s: string): Uint8Array => Uint8Array.from(s.match(/../g) ?? [], (b) => Number.parseInt(b, 16));

describe('captured PostgreSQL 18.4 handshake', () => {
  it('decodes the StartupMessage', () => {
    const f = new Framer();
    f.push(hex(capturedStartup));
    const p = decodeStartupPacket(f.nextUntyped(STARTUP_MIN_LENGTH, STARTUP_MAX_LENGTH)!);
    expect(p.type).toBe('StartupMessage');
    if (p.type === 'StartupMessage') {
      expect(p.version).toBe(0x30000);
      expect(Object.fromEntries(p.parameters)).toEqual({
        user: 'postgres',
        database: 'postgres',
        application_name: 'pgconn-demo',
        client_encoding: 'UTF8',
      });
    }
  });

  it('decodes the server response identically at every split offset', () => {
    const bytes = hex(capturedResponse);
    const decodeAll = (cut: number) => {
      const f = new Framer();
      const out: string[] = [];
      for (const part of [bytes.subarray(0, cut), bytes.subarray(cut)]) {
        f.push(part);
        for (let m = f.next(); m !== null; m = f.next()) {
          const msg = decodeBackend(m);
          out.push(msg.type === 'ParameterStatus' ? `${msg.name}=${msg.value}` : msg.type);
        }
      }
      return out;
    };
    const whole = decodeAll(bytes.length);
    expect(whole[0]).toBe('AuthenticationOk');
    expect(whole).toContain('server_version=18.4');
    expect(whole).toContain('BackendKeyData');
    expect(whole.at(-1)).toBe('ReadyForQuery');
    for (let cut = 0; cut <= bytes.length; cut++) expect(decodeAll(cut)).toEqual(whole);
  });
});
