/**
 * Fedify's message queues (inbox, outbox, fanout) in one PostgreSQL table.
 *
 * Why not @fedify/postgres's PostgresMessageQueue: it deletes a message
 * before handling it, so a process stopped or killed mid-task loses that
 * activity. Here a worker leases a row (`locked_until`), renews the lease
 * while the handler runs, and deletes the row only once the handler is done;
 * a row whose worker died is taken again when its lease ends. Enqueuing
 * wakes workers through LISTEN/NOTIFY; a slow poll catches delayed
 * messages (Fedify's retries with back-off) and missed notifications.
 * Several workers per queue run at once (`concurrency`);
 * messages with the same `orderingKey` are still handled one at a time, in
 * the order they were queued (a reply's numbered notes arrive in order).
 * That order holds through Fedify's retries: when a handler queues a message
 * again under the key of the one it holds (a failed delivery, to try later),
 * the held row takes the new message in place, so it keeps its turn — queued
 * as a new row, it would go behind the messages that were waiting for it.
 *
 * With a `box`, messages are sealed at rest (AES-256-GCM, SECRET_KEY): an
 * outbox message carries the bot's private signing key (Fedify puts it in
 * each one) and the text of a person's direct messages; and ordering keys,
 * which name the recipient, are stored as keyed digests.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { MessageQueue, MessageQueueEnqueueOptions, MessageQueueListenOptions } from "@fedify/fedify";
import type { Sql } from "../../src/store/database.ts";
import type { SecretBox } from "../../src/store/secrets.ts";
import type { Queryable } from "../../src/store/types.ts";

const CHANNEL = "fediverse_queue";

export interface QueueOptions {
  /** Workers handling messages of this queue at the same time. */
  concurrency?: number;
  /** How long a worker holds a message before another may take it (ms). */
  leaseMs?: number;
  /** Fallback poll interval (ms). */
  pollMs?: number;
  /** Attempts after which a message that keeps failing is dropped. */
  maxAttempts?: number;
  onError?: (error: unknown, message: unknown) => void;
  /** Whether a message may be handled at all, asked as a worker takes it; a refused one is dropped. */
  admit?: (message: unknown) => Promise<boolean>;
  /** Seals messages at rest (see above); rows written without one are still read. */
  box?: SecretBox;
}

function delayMs(options?: MessageQueueEnqueueOptions): number {
  const delay = options?.delay;
  if (!delay) return 0;
  return Math.max(0, delay.total("millisecond"));
}

interface Pending {
  message: unknown;
  ms: number;
  key: string | null;
}

/** The row a worker is handling, as its handler sees it (for a retry in place). */
interface Held {
  id: string;
  key: string | null;
  /** Whether the handler has already put a message of its own into this row. */
  replaced: boolean;
  /** The handler has returned. */
  closed?: boolean;
}

export class PostgresQueue implements MessageQueue {
  readonly nativeRetrial = false;
  readonly name: string;
  private readonly sql: Sql;
  private readonly concurrency: number;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly maxAttempts: number;
  private readonly onError: (error: unknown, message: unknown) => void;
  private readonly admit: (message: unknown) => Promise<boolean>;
  private readonly box: SecretBox | undefined;
  /** Bound into each ciphertext: a message cannot be moved to another queue. */
  private readonly sealContext: string;
  private readonly batches = new AsyncLocalStorage<Pending[]>();
  private readonly held = new AsyncLocalStorage<Held>();

  constructor(sql: Sql, name: string, options: QueueOptions = {}) {
    this.sql = sql;
    this.name = name;
    this.concurrency = options.concurrency ?? 4;
    this.leaseMs = options.leaseMs ?? 5 * 60_000;
    this.pollMs = options.pollMs ?? 1_000;
    this.maxAttempts = options.maxAttempts ?? 20;
    this.onError = options.onError ?? (() => {});
    this.admit = options.admit ?? (async () => true);
    this.box = options.box;
    this.sealContext = `fediverse_queue:${name}`;
  }

  /** A message as stored: as is, or sealed into a string. */
  private toRow(message: unknown): unknown {
    return this.box ? this.box.seal(JSON.stringify(message), this.sealContext).toString("base64") : message;
  }

  private fromRow(stored: unknown): unknown {
    if (typeof stored !== "string") return stored;
    if (!this.box) throw new Error(`fediverse queue ${this.name}: a sealed message, and no key to open it`);
    return JSON.parse(this.box.open(Buffer.from(stored, "base64"), this.sealContext));
  }


  async enqueue(message: unknown, options?: MessageQueueEnqueueOptions): Promise<void> {
    await this.enqueueMany([message], options);
  }

  async enqueueMany(messages: readonly unknown[], options?: MessageQueueEnqueueOptions): Promise<void> {
    if (messages.length === 0) return;
    const ms = delayMs(options);
    const orderingKey = options?.orderingKey ?? null;
    // Fedify's keys name the recipient; the order only needs them equal.
    const key = orderingKey !== null && this.box ? this.box.digest(orderingKey, this.sealContext) : orderingKey;
    const batch = this.batches.getStore();
    if (batch) {
      for (const message of messages) batch.push({ message, ms, key });
      return;
    }
    const held = this.held.getStore();
    if (held && !held.replaced && !held.closed && key !== null && key === held.key && messages.length === 1) {
      // Queued again by the handler of the row it holds (a retry): in that row's place.
      held.replaced = true;
      const updated = await this.sql`
        update fediverse_queue
        set message = ${this.sql.json(this.toRow(messages[0]) as never)}, run_at = now() + ${ms} * interval '1 millisecond',
            locked_until = null, attempts = 0
        where id = ${held.id}`;
      if (updated.count > 0) return;
      // The row is gone (its lease ran out and another worker finished it): a new one.
    }
    await this.insert(messages, ms, key);
  }

  /**
   * Runs `fn`, holding back what it enqueues on this queue until it ends,
   * then enqueues all of it in one statement (in order; one commit instead
   * of one per message). What was enqueued before an error is still
   * enqueued, as it would have been one by one. With `sql` (a transaction),
   * the messages go in through it: they commit, or not, with what else it does.
   */
  async batch<T>(fn: () => Promise<T>, sql: Queryable = this.sql): Promise<T> {
    const pending: Pending[] = [];
    try {
      return await this.batches.run(pending, fn);
    } finally {
      for (let i = 0; i < pending.length; ) {
        // Consecutive messages with the same delay and ordering key go together.
        let j = i;
        while (j < pending.length && pending[j]!.ms === pending[i]!.ms && pending[j]!.key === pending[i]!.key) j++;
        await this.insert(pending.slice(i, j).map((p) => p.message), pending[i]!.ms, pending[i]!.key, sql);
        i = j;
      }
    }
  }

  private async insert(messages: readonly unknown[], ms: number, key: string | null, sql: Queryable = this.sql): Promise<void> {
    await sql`
      with added as (
        insert into fediverse_queue (queue, message, run_at, ordering_key)
        select ${this.name}, m.value, now() + ${ms} * interval '1 millisecond', ${key}
        from jsonb_array_elements(${sql.json(messages.map((m) => this.toRow(m)) as never)}::jsonb) with ordinality as m(value, n)
        order by m.n
        returning 1)
      select pg_notify(${CHANNEL}, ${this.name}) from (select 1 from added limit 1) x`;
  }

  /** Extends a worker's lease on a row, while that take (counted in `attempts`) still holds it. */
  private async renewLease(id: string, attempts: number): Promise<void> {
    await this.sql`
      update fediverse_queue set locked_until = now() + ${this.leaseMs} * interval '1 millisecond'
      where id = ${id} and attempts = ${attempts} and locked_until is not null`;
  }

  /** Messages waiting (ready or delayed) in this queue. */
  async depth(): Promise<number> {
    const [row] = await this.sql<{ n: number }[]>`select count(*)::int as n from fediverse_queue where queue = ${this.name}`;
    return row?.n ?? 0;
  }

  async listen(handler: (message: any) => Promise<void> | void, options: MessageQueueListenOptions = {}): Promise<void> {
    const signal = options.signal;
    // Idle workers, oldest first. A notification wakes one of them; a worker
    // that finds a message wakes the next (so a burst reaches all of them)
    // instead of every notification sending all idle workers to the table.
    const sleepers = new Set<() => void>();
    const wakeOne = () => {
      for (const wake of sleepers) {
        wake();
        return;
      }
    };
    const wakeAll = () => {
      for (const wake of [...sleepers]) wake();
    };
    const subscription = await this.sql.listen(CHANNEL, (payload) => {
      if (payload === this.name) wakeOne();
    });
    signal?.addEventListener("abort", wakeAll);
    const sleep = () =>
      new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve();
        const wake = () => {
          clearTimeout(timer);
          sleepers.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, this.pollMs);
        sleepers.add(wake);
      });

    const worker = async () => {
      while (!signal?.aborted) {
        let rows: { id: string; message: unknown; attempts: number; ordering_key: string | null }[];
        try {
          rows = await this.sql<{ id: string; message: unknown; attempts: number; ordering_key: string | null }[]>`
            update fediverse_queue q
            set locked_until = now() + ${this.leaseMs} * interval '1 millisecond', attempts = q.attempts + 1
            from (select n.id from fediverse_queue n
                  where n.queue = ${this.name} and n.run_at <= now()
                    and (n.locked_until is null or n.locked_until < now())
                    -- an earlier message with the same key (waiting, running or
                    -- retrying) goes first
                    and (n.ordering_key is null or not exists (
                      select 1 from fediverse_queue e
                      where e.queue = n.queue and e.ordering_key = n.ordering_key and e.id < n.id))
                  order by n.run_at, n.id limit 1
                  for update skip locked) next
            where q.id = next.id
            returning q.id, q.message, q.attempts, q.ordering_key`;
        } catch (error) {
          if (signal?.aborted) break;
          this.onError(error, undefined);
          await sleep();
          continue;
        }
        const row = rows[0];
        if (!row) {
          await sleep();
          continue;
        }
        wakeOne();
        let message: unknown;
        try {
          message = this.fromRow(row.message);
        } catch (error) {
          // Sealed with another SECRET_KEY, or damaged: no retry can open it,
          // and waiting would hold back every later message with its key.
          await this.sql`delete from fediverse_queue where id = ${row.id}`.catch(() => {});
          this.onError(new UnreadableMessageError(this.name, error), undefined);
          continue;
        }
        const held: Held = { id: row.id, key: row.ordering_key, replaced: false };
        // The lease is renewed while the handler runs: one that outlasts it
        // (a lock held by a bulk import) is not run again by another worker
        // meanwhile. Only this worker's lease (the take it counted), and
        // not once the handler has put a retry into the row.
        const heartbeat = setInterval(() => void this.renewLease(row.id, row.attempts).catch(() => {}), Math.max(1, this.leaseMs / 4));
        heartbeat.unref();
        try {
          try {
            if (await this.admit(message)) {
              try {
                await this.held.run(held, () => handler(message));
              } finally {
                // What the handler's leftovers queue after it returned goes in a row of its own.
                held.closed = true;
              }
            }
          } finally {
            clearInterval(heartbeat);
          }
          // A row its handler queued a retry into stays, for that retry.
          if (!held.replaced) await this.sql`delete from fediverse_queue where id = ${row.id}`;
        } catch (error) {
          this.onError(error, message);
          // Fedify retries failed tasks itself; this only guards against a
          // handler that throws: back off, and give up after maxAttempts.
          // A retry it queued into the row before throwing stays as queued.
          if (held.replaced) continue;
          if (row.attempts >= this.maxAttempts) {
            await this.sql`delete from fediverse_queue where id = ${row.id}`.catch(() => {});
          } else {
            const backoff = Math.min(3_600_000, 1000 * 2 ** row.attempts);
            await this.sql`
              update fediverse_queue set locked_until = null, run_at = now() + ${backoff} * interval '1 millisecond'
              where id = ${row.id}`.catch(() => {});
          }
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: this.concurrency }, worker));
    } finally {
      signal?.removeEventListener("abort", wakeAll);
      await subscription.unlisten().catch(() => {});
    }
  }
}

/** A queued message that cannot be opened (sealed with another key, or damaged); it is dropped. */
export class UnreadableMessageError extends Error {
  constructor(queue: string, cause: unknown) {
    super(`fediverse queue ${queue}: a message could not be opened (was SECRET_KEY changed?) and was dropped`, { cause });
    this.name = "UnreadableMessageError";
  }
}
