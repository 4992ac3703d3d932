/**
 * Fedify's key–value store on the service's PostgreSQL: @fedify/postgres's
 * PostgresKvStore (1.8.7, written for Fedify 1) plus the `list()` that
 * Fedify 2's `KvStore` requires, over the same table. Migration 003 creates
 * the table as an ordinary (logged) table, so cached keys and idempotence
 * records survive a crash.
 *
 * `set` and `delete` are our own: upstream's sweep every expired row after
 * each write (a scan of the whole table, i.e. per inbound message, as
 * Fedify records each activity's idempotence key), and keep the first
 * `created` when a key is written again, so a refreshed entry expires as
 * early as the first one. Here a write restarts its entry's time to live,
 * and expired rows are swept at most once per `sweepEveryMs`; `get` and
 * `list` never return an expired entry either way.
 */
import type { KvKey, KvStore, KvStoreListEntry, KvStoreSetOptions } from "@fedify/fedify";
import { PostgresKvStore } from "@fedify/postgres";
import type { Sql } from "../../src/store/database.ts";

export const KV_TABLE = "fedify_kv_v2";

export class FediverseKvStore extends PostgresKvStore implements KvStore {
  private readonly db: Sql;
  private readonly sweepEveryMs: number;
  private nextSweep = 0;

  constructor(sql: Sql, options: { sweepEveryMs?: number } = {}) {
    super(sql as never, { tableName: KV_TABLE });
    this.db = sql;
    this.sweepEveryMs = options.sweepEveryMs ?? 60_000;
  }

  override async set(key: KvKey, value: unknown, options?: KvStoreSetOptions): Promise<void> {
    await this.initialize();
    const ttl = options?.ttl == null ? null : options.ttl.toString();
    await this.db`
      insert into fedify_kv_v2 (key, value, ttl)
      values (${[...key]}::text[], ${this.db.json(value as never)}, ${ttl}::interval)
      on conflict (key) do update set value = excluded.value, ttl = excluded.ttl, created = current_timestamp`;
    await this.sweep();
  }

  override async delete(key: KvKey): Promise<void> {
    await this.initialize();
    await this.db`delete from fedify_kv_v2 where key = ${[...key]}::text[]`;
    await this.sweep();
  }

  /** Deletes expired entries, at most once per `sweepEveryMs` in this process. */
  private async sweep(): Promise<void> {
    const now = Date.now();
    if (now < this.nextSweep) return;
    this.nextSweep = now + this.sweepEveryMs;
    await this.db`delete from fedify_kv_v2 where ttl is not null and created + ttl < current_timestamp`;
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
