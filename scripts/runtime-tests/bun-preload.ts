// Preloaded by `bun test --preload` (scripts/runtime-tests/run.mjs): every `import ... from 'vitest'` in the
// core's unit tests gets Bun's own jest-compatible runner, bun:test (describe/it/test with .each and
// printf-style titles, expect with .rejects/.resolves and the Jest matchers, the hooks, vi), instead of
// vitest, which does not run on Bun. The test files themselves are unchanged.
import * as bunTest from 'bun:test';

bunTest.mock.module('vitest', () => ({ ...bunTest, suite: bunTest.describe }));
