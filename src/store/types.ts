/** The shapes the store reads and writes. */
import type postgres from "postgres";

/** Anything queries run on: the pool or an open transaction. */
export type Queryable = postgres.Sql<{}> | postgres.TransactionSql<{}>;

export type Platform = "x" | "bluesky" | "fediverse";
export const PLATFORMS: readonly Platform[] = ["x", "bluesky", "fediverse"];

/** Platforms a person can be reconnected on. */
export type TargetPlatform = "bluesky" | "fediverse";
export const TARGET_PLATFORMS: readonly TargetPlatform[] = ["bluesky", "fediverse"];

/** Strongest first: see db/migrations/001_graph_store.sql. */
export type Verification = "platform" | "dm" | "archive";
export const VERIFICATION_RANK: Record<Verification, number> = { platform: 3, dm: 2, archive: 1 };

export type MatchState = "pending" | "followed" | "already_following" | "failed" | "ignored";
export const MATCH_STATES: readonly MatchState[] = [
  "pending",
  "followed",
  "already_following",
  "failed",
  "ignored",
];

export interface PersonSettings {
  /** null: detected from each message, else the default language. */
  language: string | null;
  notify: boolean;
  autoReconnect: boolean;
  announceMe: boolean;
}

export interface Person extends PersonSettings {
  id: number;
  /** The language they last wrote to the bots in (detected), when any. */
  writtenLanguage: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface Identity {
  id: number;
  personId: number;
  platform: Platform;
  /** X account id, DID or actor URI; null for a fediverse acct not yet resolved. */
  stableId: string | null;
  /** X username, Bluesky handle or fediverse `user@host`. */
  handle: string | null;
  apiBase: string | null;
  verifiedBy: Verification;
  createdAt: Date;
  updatedAt: Date;
}

/** How a caller names an identity: its stable id, or failing that its handle. */
export interface IdentityRef {
  platform: Platform;
  stableId?: string | null | undefined;
  handle?: string | null | undefined;
}
