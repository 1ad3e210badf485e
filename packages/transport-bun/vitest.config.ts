import { defineProject } from 'vitest/config';

export default defineProject({ test: { name: '@pgconn/transport-bun', include: ['test/**/*.test.ts'] } });
