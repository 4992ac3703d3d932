/**
 * Fedify's key–value store on the service's PostgreSQL: @fedify/postgres's
 * PostgresKvStore (1.8.7, written for Fedify 1) plus the `list()` that
 * Fedify 2's `KvStore` requires, over the same table. Migration 003 creates
 * the table as an ordinary (logged) table, so cached keys and idempotence
 * records survive a crash.
 */
import type { KvKey, KvStore, KvStoreListEntry } from "@fedify/fedify";
import { PostgresKvStore } from "@fedify/postgres";
import type { Sql } from "../../src/store/database.ts";

export const KV_TABLE = "fedify_kv_v2";

export class FediverseKvStore extends PostgresKvStore implements KvStore {
  private readonly db: Sql;

  constructor(sql: Sql) {
    super(sql as never, { tableName: KV_TABLE });
    this.db = sql;
  }

  async *list(prefix: KvKey = [] as unknown as KvKey): AsyncIterable<KvStoreListEntry> {
    await this.initialize();
    const parts = [...prefix];
    const rows = await this.db<{ key: string[]; value: unknown }[]>`
      select key, value from fedify_kv_v2
      where key[1:${parts.length}] = ${parts}::text[]
        and (ttl is null or created + ttl > current_timestamp)
      order by key`;
    for (const row of rows) yield { key: row.key as unknown as KvKey, value: row.value };
  }
}
