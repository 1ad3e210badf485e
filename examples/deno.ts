// Deno: `deno run --allow-net --allow-env --allow-read examples/deno.ts`
// (`deno add jsr:@pgconn/transport-deno` elsewhere).
import { connect } from '@pgconn/transport-deno';

// A libpq URI or conninfo; the password comes from PGPASSWORD (or ~/.pgpass), as with libpq.
const url =
  Deno.env.get('PGCONN_EXAMPLE_URL') ??
  'postgresql://app@db.example.com/app?sslmode=verify-full&sslrootcert=/etc/ssl/pg-root.crt';

// verify-full: the chain must lead to sslrootcert and the certificate must name the host.
const conn = await connect(url);
try {
  console.log(`connected over ${conn.tls?.protocol} with ${conn.handshake.authMethod}`);
  const { rows } = await conn.query('select current_user, 6 * 7 as answer');
  console.log(JSON.stringify(rows)); // [["app","42"]]: text values
} finally {
  await conn.close(); // Terminate, close_notify, close
}
