import { defineProject } from 'vitest/config';

export default defineProject({ test: { name: '@pgconn/transport-deno', include: ['test/**/*.test.ts'] } });
