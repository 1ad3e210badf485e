// Bun: `bun examples/bun.ts` (`bun add @pgconn/core @pgconn/transport-bun` elsewhere).
import { connect, resolveOptions } from '@pgconn/core';
import { bunTransport } from '@pgconn/transport-bun';

// A libpq URI or conninfo; the password comes from PGPASSWORD (the core reads no files itself).
const url =
  process.env.PGCONN_EXAMPLE_URL ??
  'postgresql://app@db.example.com/app?sslmode=verify-full&sslrootcert=/etc/ssl/pg-root.crt';

// verify-full: the chain must lead to sslrootcert and the certificate must name the host.
const conn = await connect(bunTransport, resolveOptions({ conninfo: url, env: process.env }));
try {
  console.log(`connected over ${conn.tls?.protocol} with ${conn.handshake.authMethod}`);
  const { rows } = await conn.query('select current_user, 6 * 7 as answer');
  console.log(JSON.stringify(rows)); // [["app","42"]]: text values
} finally {
  await conn.close(); // Terminate, TLS close_notify, socket close
}
