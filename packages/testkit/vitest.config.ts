import { defineProject } from 'vitest/config';

export default defineProject({ test: { name: '@pgconn/testkit', include: ['test/**/*.test.ts'] } });
