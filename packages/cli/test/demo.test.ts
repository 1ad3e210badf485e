import { describe, expect, it } from 'vitest';
import { demoLines } from '../src/commands/demo.ts';

describe('pgconn demo', () => {
  it('decodes the captured PostgreSQL 18 handshake to ReadyForQuery', () => {
    const lines = demoLines();
    expect(lines).toContain(
      '-> StartupMessage protocol 3.0: user=postgres database=postgres application_name=pgconn-demo client_encoding=UTF8',
    );
    expect(lines).toContain('<- AuthenticationOk');
    expect(lines).toContain('<- ParameterStatus server_version = 18.4');
    expect(lines.some((l) => /^<- BackendKeyData pid \d+, 4-byte cancel key$/.test(l))).toBe(true);
    expect(lines.at(-1)).toBe('<- ReadyForQuery (transaction status I)');
  });
});
