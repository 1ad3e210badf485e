import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'es2022',
  },
  // The CLI bundles nothing but itself; @pgconn/* resolve from node_modules at run time.
  { entry: ['src/bin.ts'], format: ['esm'], sourcemap: true, target: 'node20' },
]);
