/**
 * The shared graph store: one object handed to every part of the service,
 * with a namespace per concept. SQL lives under src/store/ only.
 */
import type postgres from "postgres";
import { Authorizations } from "./authorizations.ts";
import { BlueskyOAuthStore } from "./bluesky-oauth.ts";
import { BlueskyState } from "./bluesky-state.ts";
import { ConversationState, type SenderRef } from "./conversation-state.ts";
import { FediverseState } from "./fediverse-state.ts";
import { Identities } from "./identities.ts";
import { LinkCodes } from "./link-codes.ts";
import { MastodonApps } from "./mastodon-apps.ts";
import { Matches } from "./matches.ts";
import { Arrivals } from "./arrivals.ts";
import { Announcements } from "./announcements.ts";
import { People } from "./people.ts";
import { ReconnectJobs } from "./reconnect-jobs.ts";
import { Revocations } from "./revocations.ts";
import type { SecretBox } from "./secrets.ts";
import { backlogStats, storeStats, type BacklogStats, type StoreStats } from "./stats.ts";
import type { Identity, IdentityRef, Person, Queryable } from "./types.ts";
import { UploadedArchives } from "./uploaded-archives.ts";
import { WebLinks } from "./web-links.ts";
import { WriteBudgets } from "./write-budget.ts";

export * from "./types.ts";
export { IdentityTakenError, type IdentityInput } from "./identities.ts";
export type { MatchCounts, MatchEntry, MatchPage } from "./matches.ts";
export type { BacklogStats, StoreStats } from "./stats.ts";
export type { JobCounts, JobState, JobTarget, ReconnectJob, RecordedOutcome, TargetOutcome } from "./reconnect-jobs.ts";
export type { WebLinkGrant, WebLinkPurpose } from "./web-links.ts";
export type { UploadedArchive } from "./uploaded-archives.ts";

export interface PersonView {
  person: Person;
  identities: Identity[];
}

export class Store {
  readonly people: People;
  readonly identities: Identities;
  readonly matches: Matches;
  readonly arrivals: Arrivals;
  readonly announcements: Announcements;
  readonly linkCodes: LinkCodes;
  readonly authorizations: Authorizations;
  readonly conversation: ConversationState;
  readonly bluesky: BlueskyState;
  readonly fediverse: FediverseState;
  readonly reconnectJobs: ReconnectJobs;
  readonly webLinks: WebLinks;
  readonly mastodonApps: MastodonApps;
  readonly blueskyOAuth: BlueskyOAuthStore;
  readonly writeBudgets: WriteBudgets;
  readonly uploadedArchives: UploadedArchives;
  readonly revocations: Revocations;

  readonly db: Queryable;
  readonly box: SecretBox;

  constructor(db: Queryable, box: SecretBox) {
    this.db = db;
    this.box = box;
    this.people = new People(db);
    this.identities = new Identities(db);
    this.matches = new Matches(db);
    this.arrivals = new Arrivals(db);
    this.announcements = new Announcements(db);
    this.linkCodes = new LinkCodes(db);
    this.authorizations = new Authorizations(db, box);
    this.conversation = new ConversationState(db);
    this.bluesky = new BlueskyState(db, box);
    this.fediverse = new FediverseState(db, box);
    this.reconnectJobs = new ReconnectJobs(db);
    this.webLinks = new WebLinks(db);
    this.mastodonApps = new MastodonApps(db, box);
    this.blueskyOAuth = new BlueskyOAuthStore(db, box);
    this.writeBudgets = new WriteBudgets(db);
    this.uploadedArchives = new UploadedArchives(db);
    this.revocations = new Revocations(db, box);
  }

  /** Runs `fn` in one transaction (or inside the current one). */
  async transaction<T>(fn: (store: Store) => Promise<T>): Promise<T> {
    if ("begin" in this.db) {
      return (await (this.db as postgres.Sql<{}>).begin((tx) => fn(new Store(tx, this.box)))) as T;
    }
    return fn(this);
  }

  /** A person and all their identities, found through any one identity. */
  async findPerson(ref: IdentityRef): Promise<PersonView | undefined> {
    const identity = await this.identities.find(ref);
    return identity && this.personView(identity.personId);
  }

  async personView(personId: number): Promise<PersonView | undefined> {
    const [person, identities] = await Promise.all([
      this.people.get(personId),
      this.identities.listForPerson(personId),
    ]);
    return person && { person, identities };
  }

  /** Joins two people into `keepId` and brings its matches up to date. */
  async mergePeople(keepId: number, dropId: number): Promise<void> {
    await this.transaction(async (s) => {
      await s.people.merge(keepId, dropId);
      await s.matches.refreshForFollowers([keepId]);
      await s.matches.refreshForTargets([keepId]);
    });
  }

  /**
   * Detaches an identity and drops the pending matches that rested on it; an
   * X identity takes its own follow edges with it, as `forget` would.
   */
  async unlink(identityId: number): Promise<boolean> {
    return this.transaction(async (s) => {
      // Its person first (lock-order.ts), then the identity as it is now.
      const seen = await s.identities.get(identityId);
      if (!seen) return false;
      await s.people.lockAll([seen.personId]);
      const identity = await s.identities.get(identityId);
      if (!identity) return false;
      await s.removeIdentities(identity.personId, [identity]);
      return true;
    });
  }

  /**
   * `unlink` as the person asks it: detaches those of `identityIds` the
   * person still has, unless that would leave them no account (`last`) or X
   * alone, which the bots can neither write to nor hear `forget` from
   * (`lastReachable`). Checked under the person's lock, against the
   * identities as they are then: two unlinks sent at once from two
   * accounts cannot both pass.
   */
  async detach(personId: number, identityIds: readonly number[]): Promise<"detached" | "last" | "lastReachable"> {
    return this.transaction(async (s) => {
      await s.people.lockAll([personId]);
      const identities = await s.identities.listForPerson(personId);
      const going = identities.filter((i) => identityIds.includes(i.id));
      const staying = identities.filter((i) => !identityIds.includes(i.id));
      if (going.length === 0) return "detached";
      if (staying.length === 0) return "last";
      if (!staying.some((i) => i.platform !== "x")) return "lastReachable";
      await s.removeIdentities(personId, going);
      return "detached";
    });
  }

  /** With the person locked: identities out, an X one's follow edges too, and the matches that rested on them. */
  private async removeIdentities(personId: number, identities: readonly Identity[]): Promise<void> {
    for (const identity of identities) {
      if (identity.platform === "x" && identity.stableId) await this.people.deleteEdgesOf(identity.stableId);
      await this.identities.remove(identity.id);
    }
    await this.matches.prune([personId]);
  }

  /** Deletes the person's uploaded X archive and the pending matches that rested on it. */
  async removeUpload(personId: number): Promise<boolean> {
    return this.transaction(async (s) => {
      await s.people.lockAll([personId]); // before what names them: lock-order.ts
      const removed = await s.uploadedArchives.remove(personId);
      if (removed) await s.matches.prune([personId]);
      return removed;
    });
  }

  /** Deletes everything about a person. */
  async forget(personId: number): Promise<boolean> {
    return this.transaction((s) => s.people.delete(personId));
  }

  /**
   * `forget` and the conversation state kept for each of the person's
   * accounts (and for `alsoSenders`), in one transaction: an erasure leaves
   * nothing keyed by any of their ids.
   */
  async erase(personId: number, alsoSenders: readonly SenderRef[] = []): Promise<boolean> {
    return this.transaction(async (s) => (await s.eraseAsSeen(personId, undefined, alsoSenders)) === "erased");
  }

  /**
   * `erase`, only if the person still has exactly the identities `seen`
   * (ids): `changed` when a link or unlink came in between (what was done
   * for the identities seen — their tokens revoked — must be done again for
   * the person as they are now), `gone` when they were merged into another
   * person or forgotten meanwhile. Nothing is deleted unless `erased`.
   */
  async eraseAsSeen(personId: number, seen: readonly number[] | undefined, alsoSenders: readonly SenderRef[] = []): Promise<"erased" | "changed" | "gone"> {
    return this.transaction(async (s) => {
      // The person first, as every writer does (lock-order.ts): no link or merge moves an identity while it is read.
      if (!(await s.people.lockAll([personId])).length) return "gone";
      const identities = await s.identities.listForPerson(personId);
      if (seen && (identities.length !== seen.length || identities.some((i) => !seen.includes(i.id)))) return "changed";
      const erased = await s.forget(personId);
      const senders = [...alsoSenders, ...identities.flatMap((i) => (i.stableId ? [{ platform: i.platform, stableId: i.stableId }] : []))];
      await s.conversation.forgetSenders(senders);
      // Answers held for a retry (codes, links, matches) are not sent after the person is gone.
      await s.fediverse.dropHeldReplies(senders);
      await s.bluesky.dropHeldReplies(senders);
      return erased ? "erased" : "gone";
    });
  }

  /** Work waiting: reconnection jobs, fediverse queues. */
  backlog(): Promise<BacklogStats> {
    return backlogStats(this.db);
  }

  /** Store counts; `estimateEdges` trades the exact edge count for speed. */
  stats(options: { estimateEdges?: boolean } = {}): Promise<StoreStats> {
    return storeStats(this.db, options);
  }
}
