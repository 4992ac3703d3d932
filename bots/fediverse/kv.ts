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
 * `list` never return an expired entry either way. A `null` value is
 * stored as a JSON null (Fedify records one for a key it could not fetch;
 * as an SQL NULL it broke the insert).
 *
 * Remote actors' public keys (read for every signed request) are also kept
 * in this process's memory for a few minutes (never past their own time to
 * live), written through: a key that
 * changed is seen when a signature fails with the remembered one, as Fedify
 * then fetches the key again and stores it.
 */
import type { KvKey, KvStore, KvStoreListEntry, KvStoreSetOptions } from "@fedify/fedify";
import { PostgresKvStore } from "@fedify/postgres";
import type { Sql } from "../../src/store/database.ts";
import { TtlCache } from "./cache.ts";

export const KV_TABLE = "fedify_kv_v2";

/** Key prefixes kept in memory too (Fedify's cache of remote public keys). */
const REMEMBERED: readonly (readonly string[])[] = [["_fedify", "publicKey"]];

export class FediverseKvStore extends PostgresKvStore implements KvStore {
  private readonly db: Sql;
  private readonly sweepEveryMs: number;
  private nextSweep = 0;
  private readonly memory: TtlCache<unknown>;
  /** Writes of remembered keys so far: a read that overlapped one does not fill the memory. */
  private writes = 0;

  constructor(sql: Sql, options: { sweepEveryMs?: number; memoryTtlMs?: number } = {}) {
    super(sql as never, { tableName: KV_TABLE });
    this.db = sql;
    this.sweepEveryMs = options.sweepEveryMs ?? 60_000;
    this.memory = new TtlCache({ ttlMs: options.memoryTtlMs ?? 5 * 60_000, maxEntries: 10_000 });
  }

  override async get<T = unknown>(key: KvKey): Promise<T | undefined> {
    const remembered = rememberedKey(key);
    if (remembered === undefined) return super.get<T>(key);
    const value = this.memory.get(remembered);
    if (value !== undefined) return value as T;
    const writes = this.writes;
    await this.initialize();
    const [row] = await this.db<{ value: T; left_ms: number | null }[]>`
      select value, extract(epoch from created + ttl - current_timestamp)::float8 * 1000 as left_ms
      from fedify_kv_v2 where key = ${[...key]}::text[] and (ttl is null or created + ttl > current_timestamp)`;
    if (!row) return undefined;
    // Not if a write of a remembered key came in meanwhile: what was read may be older.
    if (writes === this.writes) this.memory.set(remembered, row.value, row.left_ms ?? Infinity);
    return row.value;
  }

  override async set(key: KvKey, value: unknown, options?: KvStoreSetOptions): Promise<void> {
    const remembered = rememberedKey(key);
    if (remembered !== undefined) {
      this.writes++;
      this.memory.delete(remembered);
    }
    await this.initialize();
    const ttl = options?.ttl == null ? null : options.ttl.toString();
    await this.db`
      insert into fedify_kv_v2 (key, value, ttl)
      values (${[...key]}::text[], ${value == null ? this.db`'null'::jsonb` : this.db.json(value as never)}, ${ttl}::interval)
      on conflict (key) do update set value = excluded.value, ttl = excluded.ttl, created = current_timestamp`;
    if (remembered !== undefined) {
      this.writes++; // again: a read that began before and ends after this write
      this.memory.set(remembered, value, options?.ttl == null ? Infinity : options.ttl.total("millisecond"));
    }
    await this.sweep();
  }

  override async delete(key: KvKey): Promise<void> {
    const remembered = rememberedKey(key);
    if (remembered !== undefined) {
      this.writes++;
      this.memory.delete(remembered);
    }
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

/** The memory key for `key` if its prefix is one kept in memory. */
function rememberedKey(key: KvKey): string | undefined {
  const remembered = REMEMBERED.some((prefix) => prefix.every((part, i) => key[i] === part));
  return remembered ? JSON.stringify(key) : undefined;
}
