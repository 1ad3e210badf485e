import { defineProject } from 'vitest/config';

export default defineProject({ test: { name: '@pgconn/core', include: ['test/**/*.test.ts'] } });
