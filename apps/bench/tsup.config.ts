import { defineConfig } from 'tsup';

export default defineConfig({
  // index: the package's (empty) library entry; codec: the codec micro-benchmark CLI,
  // run as `node apps/bench/dist/codec.js`; throughput: the throughput bench (`npm run bench`) and
  // the processes it starts: the client worker (run by node, bun or deno), the raw socket server
  // (ceiling), the pg-gateway server, the delay proxy (a link with latency) and the runtime floor server.
  entry: {
    index: 'src/index.ts',
    codec: 'src/codec.ts',
    throughput: 'src/throughput.ts',
    'throughput-worker': 'src/throughput-worker.ts',
    'throughput-rawserver': 'src/throughput-rawserver.ts',
    'throughput-gateway': 'src/throughput-gateway.ts',
    'throughput-delayproxy': 'src/throughput-delayproxy.ts',
    'throughput-floorserver': 'src/throughput-floorserver.ts',
  },
  format: ['esm', 'cjs'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  shims: true,
  target: 'es2022',
  // Imported from node_modules at run time, not bundled: the peers, and the sibling packages (their
  // builds), so a Bun or Deno worker loads the same @pgconn/core as the transport it imports.
  external: ['pg-protocol', 'pg', 'pg-copy-streams', 'postgres', 'pg-gateway', /^@pgconn\//],
});
