// Lets the shim self-check run under vitest itself: npx vitest run --root scripts/runtime-tests
import { defineConfig } from 'vitest/config';

export default defineConfig({ test: { include: ['shims.test.ts'] } });
