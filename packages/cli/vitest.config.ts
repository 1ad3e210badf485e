import { defineProject } from 'vitest/config';

export default defineProject({ test: { name: 'pgconn', include: ['test/**/*.test.ts'] } });
