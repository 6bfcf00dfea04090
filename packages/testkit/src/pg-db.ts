/**
 * Per-test-file database isolation on a shared throwaway PostgreSQL cluster.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

const DB_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Connects to `adminUrl` (any database on the cluster, normally the one the
 * test kit provides via `inject('pgUrl')`), runs `CREATE DATABASE t_<random>`
 * (or `name`, which must match /^[a-z_][a-z0-9_]*$/) and returns the URL of the
 * new, empty database. Nothing is dropped afterwards: the whole cluster is
 * thrown away at the end of the test run.
 */
export async function freshPostgresDatabase(adminUrl: string, name?: string): Promise<string> {
  const dbName = name ?? `t_${randomBytes(8).toString('hex')}`;
  if (!DB_NAME.test(dbName)) {
    throw new Error(`invalid database name ${JSON.stringify(dbName)} (want /^[a-z_][a-z0-9_]*$/, max 63 chars)`);
  }
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    // Identifier is validated above; CREATE DATABASE cannot take bind parameters.
    await client.query(`CREATE DATABASE ${dbName}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${dbName}`;
  return url.toString();
}
