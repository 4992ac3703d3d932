/**
 * Conversation state per sender, in PostgreSQL so that every process serving
 * the bots shares it: rate-limit windows, hint silence, pending `forget`
 * confirmations and failed link-code attempts. Each update is one atomic
 * statement, so concurrent messages from one sender are counted exactly.
 * Senders are keyed by a SHA-256 of `platform:stableId`.
 */
import { createHash } from "node:crypto";
import type { MatchState, Queryable, TargetPlatform } from "./types.ts";

/** A sender as the platform identifies them. */
export interface SenderRef {
  platform: string;
  stableId: string;
}

/** The key under which a sender's state is kept. */
export function senderKey(sender: SenderRef): Buffer {
  return createHash("sha256").update(`${sender.platform}:${sender.stableId}`).digest();
}

export class ConversationState {
  private readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  /**
   * Counts one message in the sender's current window and returns how many
   * the window now holds. The window restarts `windowSeconds` after it
   * began — but once a sender is over `limit`, each further message starts
   * it again: a flood stays silenced until it pauses for a whole window.
   */
  async countMessage(sender: SenderRef, now: Date, windowSeconds: number, limit: number): Promise<number> {
    const [row] = await this.db<{ window_count: number }[]>`
      insert into conversation_sender as s (sender_key, window_start, window_count, updated_at)
      values (${senderKey(sender)}, ${now}, 1, ${now})
      on conflict (sender_key) do update set
        window_start = case when s.window_start <= ${now}::timestamptz - ${windowSeconds} * interval '1 second'
                              or s.window_count >= ${limit}
                            then ${now}::timestamptz else s.window_start end,
        window_count = case when s.window_start <= ${now}::timestamptz - ${windowSeconds} * interval '1 second'
                            then 1 else s.window_count + 1 end,
        updated_at = ${now}
      returning window_count`;
    return row!.window_count;
  }

  /**
   * Claims the right to send one hint: true (and silence for `silenceSeconds`)
   * unless a hint was sent less than `silenceSeconds` ago.
   */
  async claimHint(sender: SenderRef, now: Date, silenceSeconds: number): Promise<boolean> {
    const result = await this.db`
      insert into conversation_sender as s (sender_key, window_start, hint_until, updated_at)
      values (${senderKey(sender)}, ${now}, ${now}::timestamptz + ${silenceSeconds} * interval '1 second', ${now})
      on conflict (sender_key) do update set
        hint_until = excluded.hint_until, updated_at = ${now}
      where s.hint_until is null or s.hint_until <= ${now}`;
    return result.count > 0;
  }

  /** Remembers that the sender asked to be forgotten. */
  async askForget(sender: SenderRef, now: Date): Promise<void> {
    await this.db`
      insert into conversation_sender as s (sender_key, window_start, forget_asked_at, updated_at)
      values (${senderKey(sender)}, ${now}, ${now}, ${now})
      on conflict (sender_key) do update set forget_asked_at = ${now}, updated_at = ${now}`;
  }

  /**
   * Uses up a pending `forget` made less than `maxAgeSeconds` ago; true when
   * there was one. Atomic: two confirmations cannot both succeed.
   */
  async takeForget(sender: SenderRef, now: Date, maxAgeSeconds: number): Promise<boolean> {
    const result = await this.db`
      update conversation_sender set forget_asked_at = null, updated_at = ${now}
      where sender_key = ${senderKey(sender)}
        and forget_asked_at > ${now}::timestamptz - ${maxAgeSeconds} * interval '1 second'
        and forget_asked_at <= ${now}`;
    return result.count > 0;
  }

  /** Failed link-code attempts by the sender in the last `windowSeconds`. */
  async codeFailures(sender: SenderRef, now: Date, windowSeconds: number): Promise<number> {
    const [row] = await this.db<{ n: number }[]>`
      select code_failures as n from conversation_sender
      where sender_key = ${senderKey(sender)}
        and code_failures_since > ${now}::timestamptz - ${windowSeconds} * interval '1 second'`;
    return row?.n ?? 0;
  }

  /** Records one failed link-code attempt; returns the count in the window. */
  async recordCodeFailure(sender: SenderRef, now: Date, windowSeconds: number): Promise<number> {
    const [row] = await this.db<{ code_failures: number }[]>`
      insert into conversation_sender as s (sender_key, window_start, code_failures, code_failures_since, updated_at)
      values (${senderKey(sender)}, ${now}, 1, ${now}, ${now})
      on conflict (sender_key) do update set
        code_failures = case when s.code_failures_since is null
                               or s.code_failures_since <= ${now}::timestamptz - ${windowSeconds} * interval '1 second'
                             then 1 else s.code_failures + 1 end,
        code_failures_since = case when s.code_failures_since is null
                               or s.code_failures_since <= ${now}::timestamptz - ${windowSeconds} * interval '1 second'
                             then ${now}::timestamptz else s.code_failures_since end,
        updated_at = ${now}
      returning code_failures`;
    return row!.code_failures;
  }

  /** Drops what these senders asked for (a pending `forget`) when their person is forgotten; the abuse counters stay (below). */
  async forgetSenders(senders: readonly SenderRef[]): Promise<number> {
    if (senders.length === 0) return 0;
    // A person has a handful of identities: one statement each. What guards
    // against abuse (the message window, the hint silence, wrong codes)
    // stays until it runs out (purgeIdle): else `forget` would buy a flood
    // or a code-guesser a fresh start.
    let count = 0;
    for (const sender of senders) {
      const result = await this.db`update conversation_sender set forget_asked_at = null where sender_key = ${senderKey(sender)}`;
      count += result.count;
    }
    return count;
  }

  /** Drops state untouched since `before`. */
  async purgeIdle(before: Date): Promise<number> {
    const result = await this.db`delete from conversation_sender where updated_at < ${before}`;
    return result.count;
  }

  /** The states of a person's matches with one target, per platform. */
  async matchStates(
    personId: number,
    targetPersonId: number,
  ): Promise<{ platform: TargetPlatform; state: MatchState }[]> {
    return this.db<{ platform: TargetPlatform; state: MatchState }[]>`
      select platform, state from match
      where person_id = ${personId} and target_person_id = ${targetPersonId}
      order by platform`;
  }
}
