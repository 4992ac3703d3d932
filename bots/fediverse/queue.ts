/**
 * Fedify's message queues (inbox, outbox, fanout) in one PostgreSQL table.
 *
 * Why not @fedify/postgres's PostgresMessageQueue: it deletes a message
 * before handling it, so a process stopped or killed mid-task loses that
 * activity. Here a worker leases a row (`locked_until`), and deletes it only
 * once the handler is done; a row whose worker died is taken again when its
 * lease ends. Enqueuing wakes workers through LISTEN/NOTIFY; a slow poll
 * catches delayed messages (Fedify's retries with back-off) and missed
 * notifications. Several workers per queue run at once (`concurrency`).
 */
import type { MessageQueue, MessageQueueEnqueueOptions, MessageQueueListenOptions } from "@fedify/fedify";
import type { Sql } from "../../src/store/database.ts";

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
}

function delayMs(options?: MessageQueueEnqueueOptions): number {
  const delay = options?.delay;
  if (!delay) return 0;
  return Math.max(0, delay.total("millisecond"));
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

  constructor(sql: Sql, name: string, options: QueueOptions = {}) {
    this.sql = sql;
    this.name = name;
    this.concurrency = options.concurrency ?? 4;
    this.leaseMs = options.leaseMs ?? 5 * 60_000;
    this.pollMs = options.pollMs ?? 1_000;
    this.maxAttempts = options.maxAttempts ?? 20;
    this.onError = options.onError ?? (() => {});
  }

  async enqueue(message: unknown, options?: MessageQueueEnqueueOptions): Promise<void> {
    await this.enqueueMany([message], options);
  }

  async enqueueMany(messages: readonly unknown[], options?: MessageQueueEnqueueOptions): Promise<void> {
    if (messages.length === 0) return;
    const ms = delayMs(options);
    await this.sql`
      with added as (
        insert into fediverse_queue (queue, message, run_at)
        select ${this.name}, m, now() + ${ms} * interval '1 millisecond'
        from jsonb_array_elements(${this.sql.json(messages as never)}::jsonb) as m
        returning 1)
      select pg_notify(${CHANNEL}, ${this.name}) from (select 1 from added limit 1) x`;
  }

  /** Messages waiting (ready or delayed) in this queue. */
  async depth(): Promise<number> {
    const [row] = await this.sql<{ n: number }[]>`select count(*)::int as n from fediverse_queue where queue = ${this.name}`;
    return row?.n ?? 0;
  }

  async listen(handler: (message: any) => Promise<void> | void, options: MessageQueueListenOptions = {}): Promise<void> {
    const signal = options.signal;
    let wake: (() => void) | undefined;
    const wakeAll = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const subscription = await this.sql.listen(CHANNEL, (payload) => {
      if (payload === this.name) wakeAll();
    });
    signal?.addEventListener("abort", wakeAll);
    const sleep = () =>
      new Promise<void>((resolve) => {
        if (signal?.aborted) return resolve();
        const timer = setTimeout(() => {
          wake = undefined;
          resolve();
        }, this.pollMs);
        const previous = wake;
        wake = () => {
          clearTimeout(timer);
          previous?.();
          resolve();
        };
      });

    const worker = async () => {
      while (!signal?.aborted) {
        let rows: { id: string; message: unknown; attempts: number }[];
        try {
          rows = await this.sql<{ id: string; message: unknown; attempts: number }[]>`
            update fediverse_queue q
            set locked_until = now() + ${this.leaseMs} * interval '1 millisecond', attempts = q.attempts + 1
            from (select id from fediverse_queue
                  where queue = ${this.name} and run_at <= now()
                    and (locked_until is null or locked_until < now())
                  order by run_at, id limit 1
                  for update skip locked) next
            where q.id = next.id
            returning q.id, q.message, q.attempts`;
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
        try {
          await handler(row.message);
          await this.sql`delete from fediverse_queue where id = ${row.id}`;
        } catch (error) {
          this.onError(error, row.message);
          // Fedify retries failed tasks itself; this only guards against a
          // handler that throws: back off, and give up after maxAttempts.
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
