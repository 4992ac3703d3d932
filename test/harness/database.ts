/**
 * A fresh, migrated database per test file on the run's PostgreSQL server.
 */
import { randomBytes } from "node:crypto";
import { inject } from "vitest";
import { connect, migrate, type Sql } from "../../src/store/database.ts";
import { Store } from "../../src/store/index.ts";
import { SecretBox } from "../../src/store/secrets.ts";

export interface TestDatabase {
  url: string;
  sql: Sql;
  store: Store;
  drop(): Promise<void>;
}

export const TEST_SECRET_KEY = "test-secret-key-of-at-least-32-characters!";

/** A database of its own for one test file; `migrate: false` leaves it empty (no schema). */
export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const adminUrl = inject("adminDatabaseUrl");
  const name = `test_${randomBytes(6).toString("hex")}`;
  const admin = connect(adminUrl, { max: 1 });
  await admin.unsafe(`create database ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  if (options.migrate !== false) {
    // As the service does (openDatabase): the pool opens after the schema exists.
    const migrator = connect(url.toString(), { max: 1 });
    await migrate(migrator);
    await migrator.end({ timeout: 5 });
  }
  const sql = connect(url.toString());
  return {
    url: url.toString(),
    sql,
    store: new Store(sql, new SecretBox(TEST_SECRET_KEY)),
    async drop() {
      await sql.end({ timeout: 5 });
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end({ timeout: 5 });
    },
  };
}
