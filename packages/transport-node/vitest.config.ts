import { defineProject } from 'vitest/config';

export default defineProject({ test: { name: '@pgconn/transport-node', include: ['test/**/*.test.ts'] } });
