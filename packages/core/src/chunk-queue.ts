/**
 * The pull-based read side every transport needs: runtimes push chunks from their `data` callbacks,
 * the connection pulls with `read()`. Above a high-water mark the source is paused until the
 * consumer catches up, so a slow consumer bounds memory instead of buffering the whole stream.
 * Chunks are queued as given (no copy): the transport must hand in buffers it never rewrites.
 */

export interface FlowControl {
  pause(): void;
  resume(): void;
}

const DEFAULT_HIGH_WATER = 1024 * 1024;

/** Read slots dropped from the front of the array at once, when they are at least half of it. */
const COMPACT_AT = 64;

export class ChunkQueue {
  /** Slots before `head` have been read and hold nothing, so a consumed chunk is garbage at once. */
  private queue: (Uint8Array | undefined)[] = [];
  private head = 0;
  private queued = 0;
  private paused = false;
  private finished = false;
  private error: Error | null = null;
  private waiter: { resolve: (c: Uint8Array | null) => void; reject: (e: Error) => void } | null = null;
  private flow: FlowControl;
  private readonly highWater: number;

  constructor(flow: FlowControl, highWater = DEFAULT_HIGH_WATER) {
    this.flow = flow;
    this.highWater = highWater;
  }

  /** Chunks received and not yet read. */
  get length(): number {
    return this.queue.length - this.head;
  }

  /**
   * Array slots in use, read ones included (for tests and diagnostics). Bounded by the unread chunks,
   * not by the stream: a queue that never empties (a consumer just behind its source) still compacts.
   */
  get slots(): number {
    return this.queue.length;
  }

  /** Bytes received and not yet read. */
  get bytes(): number {
    return this.queued;
  }

  /** A read() is waiting for data. */
  get pending(): boolean {
    return this.waiter !== null;
  }

  get ended(): boolean {
    return this.finished;
  }

  /** The error the stream ended with, if any. */
  get failure(): Error | null {
    return this.error;
  }

  push(chunk: Uint8Array): void {
    if (this.finished) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve(chunk);
      return;
    }
    this.queue.push(chunk);
    this.queued += chunk.length;
    if (this.queued > this.highWater && !this.paused) {
      this.paused = true;
      this.flow.pause();
    }
  }

  /** End of stream (error null) or failure; a waiting read() settles now, later ones after the queue drains. */
  end(error: Error | null): void {
    if (this.finished) return;
    this.finished = true;
    this.error = error;
    const w = this.waiter;
    this.waiter = null;
    if (w) error ? w.reject(error) : w.resolve(null);
  }

  /** Starts over on a new source (after a TLS upgrade replaced the socket); the queue must be empty. */
  restart(flow?: FlowControl): void {
    if (this.length > 0) throw new Error('ChunkQueue.restart() with unread data');
    this.finished = false;
    this.error = null;
    this.paused = false;
    if (flow) this.flow = flow;
  }

  read(): Promise<Uint8Array | null> {
    if (this.head < this.queue.length) {
      const c = this.queue[this.head]!;
      this.queue[this.head++] = undefined;
      this.queued -= c.length;
      if (this.head === this.queue.length) {
        this.queue = [];
        this.head = 0;
      } else if (this.head >= COMPACT_AT && this.head * 2 >= this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      if (this.paused && this.queued <= this.highWater / 2) this.resumeFlow();
      return Promise.resolve(c);
    }
    if (this.finished) return this.error ? Promise.reject(this.error) : Promise.resolve(null);
    if (this.waiter) return Promise.reject(new Error('read() already pending'));
    if (this.paused) this.resumeFlow();
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Resumes a paused source now (before a TLS takeover or a close, which must see the stream flow). */
  unpause(): void {
    if (this.paused) this.resumeFlow();
  }

  private resumeFlow(): void {
    this.paused = false;
    this.flow.resume();
  }
}
