/**
 * Runs first on Bun and on Deno (scripts/runtime-tests/run.mjs) to prove that the 'vitest' shim is really
 * asserting: a shim whose expect never throws would pass every core test. Also runs under vitest itself
 * (`npx vitest run --root scripts/runtime-tests`), which keeps these expectations true to vitest's behaviour.
 * The it.each / describe.each titles are checked by run.mjs in the runtime's report.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

class CustomError extends Error {
  code = '28P01';
}
const fails = (assertion: () => unknown) => expect(assertion).toThrow();
const failsAsync = async (assertion: () => Promise<unknown>) => {
  let threw = false;
  try {
    await assertion();
  } catch {
    threw = true;
  }
  expect(threw).toBe(true);
};

describe('shim: expect fails when it should', () => {
  it('toBe / toEqual / toBeNull / toBeUndefined / toHaveLength / toContain / toMatch', () => {
    fails(() => expect(1).toBe(2));
    fails(() => expect(new Uint8Array([1, 2])).toEqual(new Uint8Array([1, 3])));
    fails(() => expect({ a: 1 }).toEqual({ a: 1, b: 2 }));
    fails(() => expect(0).toBeNull());
    fails(() => expect(null).toBeUndefined());
    fails(() => expect([1, 2]).toHaveLength(3));
    fails(() => expect('abc').toContain('x'));
    fails(() => expect('abc').toMatch(/^b/));
    fails(() => expect(1).not.toBe(1));
    fails(() => expect(2).toBeGreaterThan(2));
    fails(() => expect(3).toBeLessThanOrEqual(2));
    expect(new Uint8Array([1, 2])).toEqual(new Uint8Array([1, 2]));
    expect([1, 2]).toHaveLength(2);
  });

  it('toMatchObject and expect.objectContaining', () => {
    expect({ a: 1, b: { c: 2, d: 3 } }).toMatchObject({ b: { c: 2 } });
    fails(() => expect({ a: 1, b: { c: 2 } }).toMatchObject({ b: { c: 3 } }));
    fails(() => expect({ a: 1 }).toMatchObject({ x: undefined }));
    expect([{ a: 1, b: 2 }]).toEqual([expect.objectContaining({ a: 1 })]);
    fails(() => expect([{ a: 1 }]).toEqual([expect.objectContaining({ a: 2 })]));
    expect(new CustomError('x')).toMatchObject({ code: '28P01', message: 'x' });
  });

  it('toThrow with a regex, a string, a class and an object', () => {
    const thrower = () => {
      throw new CustomError('password authentication failed');
    };
    expect(thrower).toThrow();
    expect(thrower).toThrow(/authentication failed$/);
    expect(thrower).toThrow('authentication');
    expect(thrower).toThrow(CustomError);
    expect(thrower).toThrow(Error);
    fails(() => expect(thrower).toThrow(/^nope/));
    fails(() => expect(thrower).toThrow('nope'));
    fails(() => expect(thrower).toThrow(TypeError));
    fails(() => expect(() => 1).toThrow());
    expect(() => 1).not.toThrow();
    fails(() => expect(thrower).not.toThrow());
  });

  it('toBeInstanceOf', () => {
    expect(new CustomError('x')).toBeInstanceOf(CustomError);
    expect(new CustomError('x')).toBeInstanceOf(Error);
    fails(() => expect(new Error('x')).toBeInstanceOf(CustomError));
  });

  it('.rejects / .resolves', async () => {
    const rejecting = () => Promise.reject(new CustomError('boom'));
    await expect(rejecting()).rejects.toThrow(/boom/);
    await expect(rejecting()).rejects.toThrow(CustomError);
    await expect(rejecting()).rejects.toMatchObject({ code: '28P01' });
    await expect(rejecting()).rejects.toBeInstanceOf(CustomError);
    await expect(Promise.resolve(5)).resolves.toBe(5);
    await failsAsync(() => expect(Promise.resolve(1)).rejects.toThrow());
    await failsAsync(() => expect(rejecting()).rejects.toThrow(/other/));
    await failsAsync(() => expect(rejecting()).rejects.toMatchObject({ code: 'XX000' }));
    await failsAsync(() => expect(rejecting()).resolves.toBe(1));
  });
});

const log: string[] = [];
describe('shim: hooks', () => {
  beforeAll(() => {
    log.push('beforeAll');
  });
  beforeEach(() => {
    log.push('beforeEach');
  });
  afterEach(() => {
    log.push('afterEach');
  });
  afterAll(() => {
    log.push('afterAll');
  });
  it('first', () => {
    log.push('first');
  });
  it('second', async () => {
    await Promise.resolve();
    log.push('second');
  });
});

describe('shim: hooks ran in order', () => {
  it('beforeAll once, beforeEach/afterEach around each test, afterAll after the last', () => {
    expect(log).toEqual([
      'beforeAll',
      'beforeEach',
      'first',
      'afterEach',
      'beforeEach',
      'second',
      'afterEach',
      'afterAll',
    ]);
  });
});

const seen: unknown[][] = [];
describe('shim: each', () => {
  it.each([
    ['a', 1],
    ['b', 2],
  ])('each title %s %i', (letter, n) => {
    seen.push([letter, n]);
  });
  it.each([{ x: 'y' }])('each object $x', (row) => {
    seen.push([row]);
  });
  it.each(['solo'])('each scalar %j', (value) => {
    seen.push([value]);
  });
  it('passes each row to the test, spread when every row is an array', () => {
    expect(seen).toEqual([['a', 1], ['b', 2], [{ x: 'y' }], ['solo']]);
  });
});

describe.each([['outer', 3]])('describe.each %s %d', (name, n) => {
  it('gets the row', () => {
    expect([name, n]).toEqual(['outer', 3]);
  });
});
