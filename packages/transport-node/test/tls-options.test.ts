/**
 * tlsConnectOptions / tlsServerOptions build one SecureContext per set of inputs and hand the same one
 * back while the inputs stay the same; any input that differs (CA, key, passphrase) must build anew,
 * so a mismatched key or a wrong passphrase still fails right after the right ones were used.
 */
import { readFileSync } from 'node:fs';
import { type CertSet, createCertSet } from '@pgconn/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tlsConnectOptions, tlsServerOptions } from '../src/tls-options.ts';

let certs: CertSet;

beforeAll(async () => {
  certs = await createCertSet();
}, 30_000);

afterAll(async () => {
  await certs?.remove();
});

describe('SecureContext reuse', () => {
  it('the same inputs share one context; another CA gets its own', () => {
    const ca = [readFileSync(certs.bundles.rootServerCa, 'utf8')];
    const a = tlsConnectOptions({ ca, alpnProtocols: ['postgresql'] }).secureContext;
    expect(tlsConnectOptions({ ca: [...ca], alpnProtocols: [] }).secureContext).toBe(a);
    const b = tlsConnectOptions({ ca: [certs.ca.wrong.certPem], alpnProtocols: [] }).secureContext;
    expect(b).not.toBe(a);
    expect(tlsConnectOptions({ ca, alpnProtocols: [] }).secureContext).toBe(a);
  });

  it('a key that does not match the certificate fails right after the matching one was used', () => {
    const leaf = certs.server.localhost;
    const server = (key: string) => tlsServerOptions({ cert: leaf.certPem, key, alpnProtocols: [] });
    expect(server(leaf.keyPem).secureContext).toBeDefined();
    expect(() => server(certs.client.client.keyPem)).toThrow(/key values mismatch/);
    expect(server(leaf.keyPem).secureContext).toBeDefined();
  });

  it('a wrong passphrase fails right after the right one was used', () => {
    const c = certs.client.client;
    const enc = certs.clientKeys.encryptedPem;
    const key = readFileSync(enc.path, 'utf8');
    const client = (passphrase: string) =>
      tlsConnectOptions({ cert: c.certPem, key, passphrase, alpnProtocols: [] });
    expect(client(enc.passphrase).secureContext).toBeDefined();
    expect(() => client(`not-${enc.passphrase}`)).toThrow(/bad decrypt/);
  });
});
