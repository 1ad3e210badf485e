import { describe, expect, it } from 'vitest';
import { ChunkQueue } from '../src/chunk-queue.ts';

const flow = () => {
  const log: string[] = [];
  return { log, control: { pause: () => log.push('pause'), resume: () => log.push('resume') } };
};

describe('ChunkQueue', () => {
  it('hands queued chunks out in order, then waits for the next one', async () => {
    const { control } = flow();
    const q = new ChunkQueue(control);
    const a = Uint8Array.of(1);
    q.push(a);
    q.push(Uint8Array.of(2));
    expect(await q.read()).toBe(a); // the same buffer: no copy
    expect([...(await q.read())!]).toEqual([2]);
    const pending = q.read();
    expect(q.pending).toBe(true);
    q.push(Uint8Array.of(3));
    expect([...(await pending)!]).toEqual([3]);
  });

  it('pauses the source above the high-water mark and resumes once half is read', async () => {
    const { log, control } = flow();
    const q = new ChunkQueue(control, 10);
    for (let i = 0; i < 4; i++) q.push(new Uint8Array(4));
    expect(log).toEqual(['pause']);
    expect(q.bytes).toBe(16);
    await q.read();
    await q.read();
    expect(q.bytes).toBe(8);
    expect(log).toEqual(['pause']); // 8 bytes left > 5
    await q.read();
    expect(log).toEqual(['pause', 'resume']);
  });

  it('ends: queued data first, then null or the error; a waiting read settles at once', async () => {
    const q = new ChunkQueue(flow().control);
    q.push(Uint8Array.of(1));
    q.end(new Error('reset'));
    expect([...(await q.read())!]).toEqual([1]);
    await expect(q.read()).rejects.toThrow('reset');
    const r = new ChunkQueue(flow().control);
    const waiting = r.read();
    r.end(null);
    expect(await waiting).toBeNull();
    expect(await r.read()).toBeNull();
  });

  it('refuses a second concurrent read and a restart with unread data', async () => {
    const q = new ChunkQueue(flow().control);
    void q.read();
    await expect(q.read()).rejects.toThrow('read() already pending');
    q.push(Uint8Array.of(1));
    q.push(Uint8Array.of(2));
    expect(() => q.restart()).toThrow(/unread data/);
  });

  it('keeps only unread chunks when it never empties (a consumer just behind its source)', async () => {
    const q = new ChunkQueue(flow().control, 1 << 30);
    q.push(new Uint8Array(1));
    q.push(new Uint8Array(1));
    let maxSlots = 0;
    for (let i = 0; i < 10_000; i++) {
      q.push(new Uint8Array(1));
      await q.read();
      maxSlots = Math.max(maxSlots, q.slots);
    }
    expect(q.length).toBe(2);
    // Before the fix every chunk since the queue was last empty stayed referenced (10,002 slots).
    expect(maxSlots).toBeLessThanOrEqual(130);
  });
});
