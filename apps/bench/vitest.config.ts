import { defineProject } from 'vitest/config';

export default defineProject({ test: { name: '@pgconn/bench', include: ['test/**/*.test.ts'] } });
