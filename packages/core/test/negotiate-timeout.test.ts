/**
 * negotiate()'s connect_timeout: the transport's connect gets an abort signal only when there is a
 * timeout, and the timeout aborts it (so a connect that completes late is closed by the transport).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
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

describe('negotiate: connect_timeout and the abort signal', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('passes no signal without a timeout', async () => {
    const seen: (ConnectOptions | undefined)[] = [];
    void negotiate(hangingTransport(seen), endpoint, config, { socket: { noDelay: true } });
    await Promise.resolve();
    expect(seen).toHaveLength(1);
    expect(seen[0]?.signal).toBeUndefined();
    expect(seen[0]?.noDelay).toBe(true);
  });

  it('passes a signal with a timeout and aborts it when the timeout expires', async () => {
    vi.useFakeTimers();
    const seen: (ConnectOptions | undefined)[] = [];
    const result = negotiate(hangingTransport(seen), endpoint, config, { connectTimeout: 2 });
    const failed = expect(result).rejects.toThrow(
      'connection to server at "127.0.0.1", port 5432 failed: timeout expired',
    );
    await Promise.resolve();
    const signal = seen[0]?.signal;
    expect(signal).toBeInstanceOf(AbortSignal);
    expect(signal?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1999);
    expect(signal?.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(signal?.aborted).toBe(true);
    await failed;
  });
});
