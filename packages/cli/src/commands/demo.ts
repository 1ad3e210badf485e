/**
 * `pgconn demo`: decodes a captured PostgreSQL 18 handshake with the core's codecs and prints it
 * step by step, the way `pgconn probe` prints a live one.
 */
import {
  decodeBackend,
  decodeStartupPacket,
  Framer,
  STARTUP_MAX_LENGTH,
  STARTUP_MIN_LENGTH,
} from '@pgconn/core';
import { capturedResponse, capturedStartup } from './captured-handshake.ts';

const hex = (s: string): Uint8Array => Uint8Array.from(s.match(/../g) ?? [], (b) => Number.parseInt(b, 16));

export function demoLines(): string[] {
  const lines: string[] = ['Decoding a captured handshake (PostgreSQL 18.4, trust, plaintext):', ''];
  const startup = new Framer();
  startup.push(hex(capturedStartup));
  const body = startup.nextUntyped(STARTUP_MIN_LENGTH, STARTUP_MAX_LENGTH);
  if (!body) throw new Error('captured StartupMessage is incomplete');
  const packet = decodeStartupPacket(body);
  if (packet.type === 'StartupMessage') {
    const v = packet.version;
    const params = [...packet.parameters].map(([k, val]) => `${k}=${val}`).join(' ');
    lines.push(`-> StartupMessage protocol ${v >>> 16}.${v & 0xffff}: ${params}`);
  }
  const framer = new Framer();
  framer.push(hex(capturedResponse));
  for (let f = framer.next(); f !== null; f = framer.next()) {
    const m = decodeBackend(f);
    switch (m.type) {
      case 'ParameterStatus':
        lines.push(`<- ParameterStatus ${m.name} = ${m.value}`);
        break;
      case 'BackendKeyData':
        lines.push(`<- BackendKeyData pid ${m.processId}, ${m.secretKey.length}-byte cancel key`);
        break;
      case 'ReadyForQuery':
        lines.push(`<- ReadyForQuery (transaction status ${m.status})`);
        break;
      default:
        lines.push(`<- ${m.type}`);
    }
  }
  return lines;
}

export function runDemo(): number {
  for (const line of demoLines()) console.log(line);
  return 0;
}
