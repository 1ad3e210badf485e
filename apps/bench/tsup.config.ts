import { defineConfig } from 'tsup';

export default defineConfig({
  // index: the package's (empty) library entry; codec: the codec micro-benchmark CLI,
  // run as `node apps/bench/dist/codec.js`.
  entry: ['src/index.ts', 'src/codec.ts'],
  format: ['esm', 'cjs'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'es2022',
  // Imported from node_modules at run time, not bundled.
  external: ['pg-protocol'],
});
