import { defineProject } from 'vitest/config';
import { alias } from '../../vitest.shared.ts';

export default defineProject({
  resolve: { alias },
  test: { name: '@pgconn/transport-bun', include: ['test/**/*.test.ts'] },
});
