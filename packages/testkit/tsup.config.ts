import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/demo.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  // postgres.ts resolves the PostgreSQL packages from import.meta.url, which CJS output lacks.
  shims: true,
});
