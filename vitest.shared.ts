// Tests run against the sources of sibling packages, never against stale builds.
import { fileURLToPath } from 'node:url';

const src = (pkg: string) => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

export const alias = {
  '@pgconn/core': src('core'),
  '@pgconn/testkit': src('testkit'),
  '@pgconn/transport-node': src('transport-node'),
};
