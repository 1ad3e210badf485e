/**
 * negotiate()'s connect_timeout: the transport's connect gets an abort signal only when there is a
 * timeout, and the timeout aborts it (so a connect that completes late is closed by the transport).
 */
import { describe, expect, it } from 'vitest';
import { negotiate } from '../src/connection.ts';
import type { ConnectOptions, Transport, TransportSocket } from '../src/transport.ts';

/** A transport whose connect never completes; it records the options it was given. */
function hangingTransport(seen: (ConnectOptions | undefined)[]): Transport {
  return {
    runtime: 'test',
    uid: -1,
    connect(_endpoint, options) {
      seen.push(options);
      return new Promise<TransportSocket>(() => {});
    },
  } as Partial<Transport> as Transport;
}

const endpoint = { host: '127.0.0.1', port: 5432 };
const config = { host: '127.0.0.1', user: 'alice', database: 'db', sslmode: 'disable' as const };

// Real timers (the core's tests also run on Bun and Deno, whose vitest shims have no fake timers):
// connect_timeout's minimum of 2 s makes the second case take 2 s.
describe('negotiate: connect_timeout and the abort signal', () => {
  it('passes no signal without a timeout', async () => {
    const seen: (ConnectOptions | undefined)[] = [];
    void negotiate(hangingTransport(seen), endpoint, config, { socket: { noDelay: true } });
    await Promise.resolve();
    expect(seen).toHaveLength(1);
    expect(seen[0]?.signal).toBeUndefined();
    expect(seen[0]?.noDelay).toBe(true);
  });

  it('passes a signal with a timeout and aborts it when the timeout expires', async () => {
    const seen: (ConnectOptions | undefined)[] = [];
    const started = Date.now();
    const result = negotiate(hangingTransport(seen), endpoint, config, { connectTimeout: 2 });
    // Settled by hand: Bun's expect(...).rejects waits for the promise when called.
    const outcome = result.then(
      () => null,
      (e: Error) => e,
    );
    await Promise.resolve();
    const signal = seen[0]?.signal;
    expect(signal).toBeInstanceOf(AbortSignal);
    await new Promise((r) => setTimeout(r, 1000));
    expect(signal?.aborted).toBe(false);
    expect((await outcome)?.message).toBe(
      'connection to server at "127.0.0.1", port 5432 failed: timeout expired',
    );
    expect(signal?.aborted).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1990);
  }, 10_000);
});
