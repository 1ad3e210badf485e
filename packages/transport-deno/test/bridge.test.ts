/**
 * The Conn bridge's read sizes (this file runs on Node: the bridge only needs a Conn-shaped object).
 * A fake Conn answers each read with as many bytes as the test says and records the buffer size
 * asked for, so the policy in bridge.ts is checked directly: reads grow while they fill and the
 * reader has room, stay at 64 KiB while it has none, and drop to a 16 KiB probe once the kernel runs
 * dry (what an idle connection then pins). Every byte must come out of the Duplex once, in order.
 */
import { describe, expect, it } from 'vitest';
import { connDuplex } from '../src/bridge.ts';

/** How many bytes a read returns, given its buffer size and index; 'idle' never answers. */
type Script = (size: number, index: number) => number | 'idle';

function fakeConn(script: Script) {
  const sizes: number[] = [];
  let next = 0;
  const conn = {
    read(buf: Uint8Array): Promise<number | null> {
      const i = sizes.length;
      sizes.push(buf.length);
      const n = script(buf.length, i);
      if (n === 'idle') return new Promise(() => {});
      for (let k = 0; k < n; k++) buf[k] = (next + k) & 0xff;
      next += n;
      // Answered on a later turn of the event loop, as a socket would: timers still run.
      return new Promise((resolve) => setImmediate(() => resolve(n)));
    },
    write: (b: Uint8Array) => Promise.resolve(b.length),
    closeWrite: () => Promise.resolve(),
    close: () => {},
  };
  return { conn: conn as unknown as Deno.Conn, sizes };
}

/** Consumes the Duplex until `bytes` arrived (then pauses it), checking the byte sequence. */
function drain(duplex: NodeJS.ReadableStream, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const onData = (chunk: Uint8Array) => {
      for (let k = 0; k < chunk.length; k++) {
        if (chunk[k] !== ((got + k) & 0xff)) reject(new Error(`byte ${got + k} out of order`));
      }
      got += chunk.length;
      if (got < bytes) return;
      duplex.off('data', onData);
      duplex.pause();
      resolve();
    };
    duplex.on('data', onData);
  });
}

/** Runs `body` on a bridge over `conn`, destroying it afterwards whatever happens. */
async function withBridge(conn: Deno.Conn, body: (b: ReturnType<typeof connDuplex>) => Promise<void>) {
  const bridge = connDuplex(conn);
  try {
    await body(bridge);
  } finally {
    bridge.duplex.destroy();
  }
}

const KiB = 1024;
const MiB = 1024 * KiB;

describe('connDuplex read sizes', () => {
  it('grow to 1 MiB while reads fill and the reader has room, delivering every byte in order', async () => {
    const total = 16 * MiB;
    const { conn, sizes } = fakeConn((size) => size);
    await withBridge(conn, async (bridge) => {
      bridge.room = () => MiB;
      await drain(bridge.duplex, total);
    });
    expect(sizes.slice(0, 4)).toEqual([4 * KiB, 8 * KiB, 16 * KiB, 32 * KiB]);
    expect(Math.max(...sizes)).toBe(MiB);
  });

  it('stay at 64 KiB while the reader has no room (a slow consumer gains nothing from large reads)', async () => {
    const { conn, sizes } = fakeConn((size) => size);
    await withBridge(conn, async (bridge) => {
      bridge.room = () => 0;
      await drain(bridge.duplex, 8 * MiB);
    });
    expect(Math.max(...sizes)).toBe(64 * KiB);
  });

  it('ask for at most 16 KiB after a read the kernel could not fill, so an idle connection pins little', async () => {
    let bulkEnd = -1;
    const { conn, sizes } = fakeConn((size, i) => {
      if (bulkEnd < 0 && size === MiB) bulkEnd = i + 3; // a few full 1 MiB reads, then the stream ends
      if (bulkEnd < 0 || i < bulkEnd) return size;
      if (i === bulkEnd) return 300 * KiB; // the tail: less than asked for
      return 'idle';
    });
    await withBridge(conn, async (bridge) => {
      bridge.room = () => MiB;
      bridge.duplex.resume(); // a reader that keeps up, reading on after the bulk transfer
      await new Promise((r) => setTimeout(r, 50));
    });
    expect(sizes[bulkEnd]).toBe(MiB);
    // The read left pending on the now idle connection:
    expect(sizes.length).toBe(bulkEnd + 2);
    expect(sizes[bulkEnd + 1]).toBe(16 * KiB);
  });

  it('copy a small read out and reuse its buffer (a kept 100-byte view must not pin the buffer)', async () => {
    const { conn, sizes } = fakeConn((_size, i) => (i < 3 ? 100 : 'idle'));
    const chunks: Uint8Array[] = [];
    await withBridge(conn, async (bridge) => {
      bridge.duplex.on('data', (c: Uint8Array) => chunks.push(c));
      await new Promise((r) => setTimeout(r, 20));
    });
    expect(chunks.map((c) => c.length)).toEqual([100, 100, 100]);
    for (const c of chunks) expect(c.buffer.byteLength).toBeLessThan(4 * KiB);
    expect(sizes).toEqual([4 * KiB, 4 * KiB, 4 * KiB, 4 * KiB]);
  });
});
