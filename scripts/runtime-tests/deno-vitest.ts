/**
 * `vitest` for `deno test`: deno.json next to this file maps the core's unit tests' `import ... from 'vitest'`
 * here. describe/it/hooks are a small collector on top of `Deno.test` (one Deno test per `it`, named
 * "suite > sub-suite > test" as vitest names it); `expect` is vitest's own implementation, @vitest/expect's
 * Jest matchers as a chai plugin, assembled as vitest does (vitest/src/integrations/chai), so matchers,
 * asymmetric matchers, `.rejects`/`.resolves` and failure messages behave as under vitest.
 *
 * Semantics kept from vitest: describe callbacks run at collection; beforeAll runs before a suite's first
 * test and afterAll after its last (a failing beforeAll fails every test of the suite); beforeEach from the
 * outside in, afterEach from the inside out; test timeout 5 s and hook timeout 10 s unless given; it.each /
 * describe.each titles use vitest's printf-style formatting (%s %d %i %f %j %o %# %$ and $name).
 * Each test file runs in its own isolate under `deno test`, so the suite tree below is per file.
 */

import {
  ASYMMETRIC_MATCHERS_OBJECT,
  addCustomEqualityTesters,
  GLOBAL_EXPECT,
  getState,
  JestAsymmetricMatchers,
  JestChaiExpect,
  JestExtend,
  setState,
} from '@vitest/expect';
import { format, objDisplay } from '@vitest/utils/display';
import * as chai from 'chai';

// ---------------------------------------------------------------------------------------------- expect

chai.use(JestExtend);
chai.use(JestChaiExpect);
chai.use(JestAsymmetricMatchers);

type Fn = (...args: unknown[]) => unknown;
type ExpectFn = Fn & Record<string, unknown>;
const chaiExpect = chai.expect as unknown as ExpectFn;
const globals = globalThis as unknown as Record<string | symbol, unknown>;

export const expect = ((value: unknown, message?: string) => {
  const { assertionCalls } = getState(expect as never) as { assertionCalls: number };
  setState({ assertionCalls: assertionCalls + 1 }, expect as never);
  return chaiExpect(value, message);
}) as ExpectFn;
Object.assign(expect, chaiExpect);
Object.assign(expect, globals[ASYMMETRIC_MATCHERS_OBJECT]);
expect.getState = () => getState(expect as never);
expect.setState = (state: unknown) => setState(state as never, expect as never);
expect.extend = (matchers: unknown) => (chaiExpect.extend as Fn)(expect, matchers);
expect.addEqualityTesters = (testers: unknown) => addCustomEqualityTesters(testers as never);
expect.unreachable = (message?: string) => {
  chai.assert.fail(`expected${message ? ` "${message}" ` : ' '}not to be reached`);
};
setState(
  {
    assertionCalls: 0,
    isExpectingAssertions: false,
    isExpectingAssertionsError: null,
    expectedAssertionsNumber: null,
    expectedAssertionsNumberErrorGen: null,
  } as never,
  expect as never,
);
globals[GLOBAL_EXPECT] = expect;

// ------------------------------------------------------------------------------------ describe / it

type Hook = { fn: Fn; timeout: number };
interface Suite {
  name: string;
  parent: Suite | undefined;
  skip: boolean;
  beforeAll: Hook[];
  afterAll: Hook[];
  beforeEach: Hook[];
  afterEach: Hook[];
  /** tests registered under this suite (nested included) that will run, and how many have finished */
  total: number;
  done: number;
  setup: Promise<void> | undefined;
}
type Options = { timeout?: number; skip?: boolean; only?: boolean; todo?: boolean };

const TEST_TIMEOUT = 5_000;
const HOOK_TIMEOUT = 10_000;

const newSuite = (name: string, parent: Suite | undefined, skip: boolean): Suite => ({
  name,
  parent,
  skip,
  beforeAll: [],
  afterAll: [],
  beforeEach: [],
  afterEach: [],
  total: 0,
  done: 0,
  setup: undefined,
});
const root = newSuite('', undefined, false);
let current = root;

function chain(suite: Suite): Suite[] {
  const out: Suite[] = [];
  for (let s: Suite | undefined = suite; s; s = s.parent) out.unshift(s);
  return out;
}

async function withTimeout(fn: Fn, ms: number, what: string, ...args: unknown[]): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out in ${ms}ms`)), ms);
  });
  try {
    await Promise.race([Promise.resolve().then(() => fn(...args)), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function optionsOf(arg: unknown): Options {
  if (typeof arg === 'number') return { timeout: arg };
  return (arg as Options | undefined) ?? {};
}

function registerTest(name: string, fn: Fn | undefined, opts: Options): void {
  const suite = current;
  const suites = chain(suite);
  const title = [...suites.slice(1).map((s) => s.name), name].join(' > ');
  const ignore = !fn || opts.skip === true || opts.todo === true || suites.some((s) => s.skip);
  if (!ignore) for (const s of suites) s.total++;
  const timeout = opts.timeout ?? TEST_TIMEOUT;
  Deno.test({
    name: title,
    ignore,
    only: opts.only === true,
    sanitizeOps: false,
    sanitizeResources: false,
    sanitizeExit: false,
    async fn() {
      let failure: unknown;
      let failed = false;
      try {
        for (const s of suites) {
          s.setup ??= (async () => {
            for (const h of s.beforeAll) await withTimeout(h.fn, h.timeout, 'beforeAll hook');
          })();
          await s.setup;
        }
        try {
          for (const s of suites)
            for (const h of s.beforeEach) await withTimeout(h.fn, h.timeout, 'beforeEach hook');
          await withTimeout(fn as Fn, timeout, 'test', { expect, skip: notSupported('context.skip') });
        } finally {
          for (const s of [...suites].reverse()) {
            for (const h of [...s.afterEach].reverse()) await withTimeout(h.fn, h.timeout, 'afterEach hook');
          }
        }
      } catch (e) {
        failed = true;
        failure = e;
      }
      // afterAll of every suite whose last test this was, innermost first, even after a failure.
      for (const s of [...suites].reverse()) {
        if (++s.done !== s.total) continue;
        for (const h of [...s.afterAll].reverse()) {
          try {
            await withTimeout(h.fn, h.timeout, 'afterAll hook');
          } catch (e) {
            if (!failed) {
              failed = true;
              failure = e;
            }
          }
        }
      }
      if (failed) throw failure;
    },
  });
}

function registerSuite(name: string, fn: Fn | undefined, opts: Options): void {
  const suite = newSuite(name, current, opts.skip === true || opts.todo === true || !fn);
  const prev = current;
  current = suite;
  try {
    const result = fn?.();
    if (result instanceof Promise)
      throw new Error(`describe('${name}'): async describe callbacks are not supported`);
  } finally {
    current = prev;
  }
}

function notSupported(what: string): () => never {
  return () => {
    throw new Error(
      `${what} is not supported by the Deno vitest shim (scripts/runtime-tests/deno-vitest.ts)`,
    );
  };
}

// vitest's formatTitle (@vitest/runner), minus the -0/NaN %f special case.
function formatTitle(template: string, items: unknown[], idx: number): string {
  if (template.includes('%#') || template.includes('%$')) {
    template = template
      .replace(/%%/g, '__escaped_%__')
      .replace(/%#/g, `${idx}`)
      .replace(/%\$/g, `${idx + 1}`)
      .replace(/__escaped_%__/g, '%%');
  }
  const count = template.split('%').length - 1;
  let formatted = format(template, ...items.slice(0, count));
  const first = items[0];
  const isObjectItem = typeof first === 'object' && first !== null && !Array.isArray(first);
  formatted = formatted.replace(/\$([$\w.]+)/g, (all, key: string) => {
    const isArrayKey = /^\d+$/.test(key);
    if (!isObjectItem && !isArrayKey) return all;
    let value: unknown = isObjectItem ? first : items;
    for (const part of key.split('.')) value = (value as Record<string, unknown> | undefined)?.[part];
    return objDisplay(value);
  });
  return formatted;
}

type Register = (name: string, fn: Fn | undefined, opts: Options) => void;
type Collector = ((name: string, fn?: Fn, options?: number | Options) => void) & Record<string, unknown>;

function collector(register: Register, base: Options = {}): Collector {
  const c = ((name: string, fn?: Fn, options?: number | Options) =>
    register(name, fn, { ...optionsOf(options), ...base })) as Collector;
  c.each =
    (cases: readonly unknown[]) =>
    (name: string, fn: Fn, options?: number | Options): void => {
      const arrayOnly = cases.every(Array.isArray);
      cases.forEach((item, idx) => {
        const items = Array.isArray(item) ? item : [item];
        const title = formatTitle(name, items, idx);
        register(title, () => (arrayOnly ? fn(...items) : fn(item)), { ...optionsOf(options), ...base });
      });
    };
  if (Object.keys(base).length === 0) {
    c.skip = collector(register, { ...base, skip: true });
    c.only = collector(register, { ...base, only: true });
    c.todo = (name: string) => register(name, undefined, { todo: true });
    c.skipIf = (cond: unknown) => (cond ? c.skip : c);
    c.runIf = (cond: unknown) => (cond ? c : c.skip);
    c.concurrent = c;
    c.sequential = c;
  }
  return c;
}

export const it = collector(registerTest);
export const test = it;
export const describe = collector(registerSuite);
export const suite = describe;

const hook =
  (kind: 'beforeAll' | 'afterAll' | 'beforeEach' | 'afterEach') =>
  (fn: Fn, timeout?: number): void => {
    current[kind].push({ fn, timeout: timeout ?? HOOK_TIMEOUT });
  };
export const beforeAll = hook('beforeAll');
export const afterAll = hook('afterAll');
export const beforeEach = hook('beforeEach');
export const afterEach = hook('afterEach');

export const vi = new Proxy(
  {},
  {
    get(_, key) {
      return notSupported(`vi.${String(key)}`)();
    },
  },
);
