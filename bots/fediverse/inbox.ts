/**
 * What the bot does with activities in its inboxes.
 *
 * Create(Note) for the bot → an `Incoming` for the conversation engine →
 * each reply as a direct note. A note is handled once: a redelivery, a
 * replay, an Update or a Delete of it never runs its command again (the
 * note id is claimed in the database before the engine runs). Follows are
 * accepted and remembered, Undo(Follow) forgets them; Move of a known
 * account moves its identity; Delete of an actor detaches its identity —
 * also when the actor's key can no longer be fetched to check that Delete,
 * provided the actor's own server answers that it is gone (410).
 */
import type { Federation, InboxContext, RequestContext } from "@fedify/fedify";
import { Accept, Application, Create, Delete, Follow, Move, Note, Service, Undo, Update, isActor, type Actor } from "@fedify/vocab";
import { randomUUID } from "node:crypto";
import type { ConversationEngine, Incoming } from "../../src/conversation/index.ts";
import type { Logger } from "../../src/logger.ts";
import { NoteClaimLostError } from "../../src/store/fediverse-state.ts";
import type { Store } from "../../src/store/index.ts";
import type { Queryable } from "../../src/store/types.ts";
import { confirmAcct, type AcctOptions } from "./acct.ts";
import { INBOX_PATH, SHARED_INBOX_PATH } from "./actor.ts";
import { TtlCache } from "./cache.ts";
import { audienceOf, contentOf, mentionsOf } from "./message.ts";
import type { DirectDelivery } from "./direct.ts";
import { NoteClaim } from "./note-claim.ts";
import { sendReplies } from "./send.ts";

export interface InboxOptions {
  username: string;
  store: Store;
  engine: ConversationEngine;
  acct: AcctOptions;
  log: Logger;
  /** Called after each Create is handled (tests and benchmarks). */
  onHandled?: (info: { noteId: string; handledAs: string; replies: number }) => void;
  /**
   * Senders' actors as last fetched, by actor URI. Without it, every message
   * fetches its author again: Fedify's loader for a personal inbox signs the
   * request with the bot's key (on the shared inbox too: see
   * setSharedKeyDispatcher below) and never caches. Kept minutes (as Fedify's
   * own document cache), dropped on the actor's Update, Delete or Move.
   */
  actors?: TtlCache<Actor>;
  /** Queues the replies (direct messages). */
  delivery: DirectDelivery;
  /** Runs `fn` with the outbox queue's enqueues gathered into one statement, through `sql` (a transaction). */
  batchOutbox: <T>(fn: () => Promise<T>, sql: Queryable) => Promise<T>;
  /**
   * How long a claim on a note that is no longer renewed holds before another
   * delivery takes it over (default 120 s). Its holder renews it five times
   * as often while it works.
   */
  claimLeaseSeconds?: number;
}

function isBotActor(actor: Actor): boolean {
  return actor instanceof Service || actor instanceof Application;
}

/** What the inbox still does after answering (checks of unverifiable Deletes). */
export interface InboxBackground {
  /** Resolves once the checks under way are done. */
  settled(): Promise<void>;
}

export function setupInbox(federation: Federation<void>, options: InboxOptions): InboxBackground {
  const { username, store, log } = options;
  const background = new Set<Promise<void>>();
  // An actor's Delete is checked with its server at most once in this time:
  // a flood of them makes the bot ask no server more than that.
  const goneChecked = new TtlCache<true>({ ttlMs: 10 * 60_000, maxEntries: 10_000 });
  const forget = (actorId: URL | null | undefined) => {
    if (actorId) options.actors?.delete(actorId.href);
  };
  // An actor deleted: that identity detached; a person left with no account
  // the bots can write to (X alone) is forgotten, as nobody could reach them
  // or ask for it any more.
  const actorDeleted = async (actorId: URL) => {
    forget(actorId);
    const identityId = await store.fediverse.identityOf(actorId.href);
    const identity = identityId === undefined ? undefined : await store.identities.get(identityId);
    if (!identity || !(await store.unlink(identity.id))) return;
    log.info({ actor: actorId.href }, "fediverse: actor deleted, identity removed");
    const left = await store.identities.listForPerson(identity.personId);
    if (!left.some((i) => i.platform !== "x") && (await store.forget(identity.personId))) {
      log.info({ person: identity.personId }, "fediverse: nothing reachable left, person forgotten");
    }
  };
  federation
    .setInboxListeners(INBOX_PATH, SHARED_INBOX_PATH)
    // With a queue, Fedify checks and records that an activity was handled
    // in the queue's worker, under a key its check on receipt never matches
    // (@fedify/fedify 2.3): that check was a wasted query per message.
    // Handled-once stays the worker's (and, for notes, ours: claimNote).
    .withIdempotency(() => null)
    // What the listeners fetch (the sender's actor, a Move's target, a
    // follower) is fetched signed with the bot's key, on the shared inbox as
    // on its own: GoToSocial always, and Mastodon or Akkoma in authorized-fetch
    // mode, refuse to serve an actor to an unsigned request.
    .setSharedKeyDispatcher(() => ({ identifier: username }))
    .on(Create, (ctx, create) => onCreate(ctx, create, options))
    .on(Follow, async (ctx, follow) => {
      const target = ctx.parseUri(follow.objectId);
      if (target?.type !== "actor" || target.identifier !== username || !follow.actorId) return;
      const follower = await follow.getActor(ctx);
      if (!follower?.id || !follower.inboxId || follower.id.href !== follow.actorId.href) return;
      await store.fediverse.addFollower({
        actorUri: follower.id.href,
        inbox: follower.inboxId.href,
        sharedInbox: follower.endpoints?.sharedInbox?.href ?? null,
        followId: follow.id?.href ?? null,
      });
      await ctx.sendActivity(
        { identifier: username },
        follower,
        new Accept({
          id: new URL(`/fediverse/accepts/${randomUUID()}`, ctx.canonicalOrigin),
          actor: ctx.getActorUri(username),
          object: follow,
        }),
      );
      log.info({ follower: follower.id.href }, "fediverse: new follower");
    })
    .on(Undo, async (ctx, undo) => {
      const object = await undo.getObject({ ...ctx, suppressError: true } as never);
      if (!(object instanceof Follow) || !undo.actorId || object.actorId?.href !== undo.actorId.href) return;
      if (await store.fediverse.removeFollower(undo.actorId.href)) log.info({ follower: undo.actorId.href }, "fediverse: unfollowed");
    })
    .on(Update, (_ctx, update) => {
      // An edited message is not a new command: nothing to do. An edited
      // actor is fetched afresh next time.
      if (update.objectId && update.actorId && update.objectId.href === update.actorId.href) forget(update.actorId);
    })
    .on(Delete, async (_ctx, del) => {
      // Deleting a message never re-runs or undoes it. Deleting an actor
      // (object = the actor itself) detaches that identity.
      if (!del.actorId || del.objectId?.href !== del.actorId.href) return;
      await actorDeleted(del.actorId);
    })
    .on(Move, async (ctx, move) => {
      const from = move.actorId;
      if (!from || move.objectId?.href !== from.href || !fromActorsServer(move)) return;
      forget(from);
      if ((await store.fediverse.identityOf(from.href)) === undefined || !move.targetId) return;
      // The target as its own server serves it, never as embedded in the
      // activity: the mover could write Victor's "alsoKnownAs" there.
      const documentLoader = await ctx.getDocumentLoader({ identifier: username });
      const target = await ctx.lookupObject(move.targetId.href, { documentLoader }).catch(() => null);
      if (!target?.id || target.id.href !== move.targetId.href || !isActor(target)) return;
      // The new account must claim the old one (alsoKnownAs), as Mastodon requires.
      if (!target.aliasIds.some((a) => a.href === from.href)) return;
      const acct = await confirmAcct(target.id, { ...options.acct, kv: undefined, memory: undefined });
      try {
        const moved = await store.fediverse.moveIdentity(from.href, { actorUri: target.id.href, acct, apiBase: target.id.origin });
        if (moved) log.info({ from: from.href, to: target.id.href }, "fediverse: account moved");
      } catch (error) {
        log.warn({ err: error, from: from.href }, "fediverse: move not recorded");
      }
    })
    .onUnverifiedActivity(async (ctx, activity, reason) => {
      // Mastodon deletes an account first, then sends Delete(actor) signed
      // with its key, which the actor's URL no longer serves (410 Gone): a
      // receiver that did not keep that key cannot check the signature. The
      // actor's own server is the authority on whether it is gone; it is
      // asked (only for an actor the bot knows), whoever sent the Delete.
      // Nothing else unverified is taken, and neither is a Delete of anyone
      // but its own actor.
      if (!(activity instanceof Delete) || reason.type !== "keyFetchError") return;
      const actorId = activity.actorId;
      if (!actorId || activity.objectId?.href !== actorId.href) return;
      // Checked after answering, and the same answer either way: neither
      // its content nor its timing tells whether the bot knows that actor.
      if (!goneChecked.get(actorId.href)) {
        goneChecked.set(actorId.href, true);
        const check = (async () => {
          if ((await store.fediverse.identityOf(actorId.href)) !== undefined && (await isGone(ctx, username, actorId))) {
            await actorDeleted(actorId);
          }
        })()
          .catch((error: unknown) => log.warn({ err: error, actor: actorId.href }, "fediverse: check of an unverified Delete failed"))
          .finally(() => background.delete(check));
        background.add(check);
      }
      return new Response(null, { status: 202 });
    })
    .onError((_ctx, error) => {
      if (error instanceof NoteBusyError) log.debug({ err: error.message }, "fediverse: note busy, retrying later");
      else log.warn({ err: error }, "fediverse: inbox listener failed");
    });
  return {
    async settled() {
      while (background.size > 0) await Promise.all([...background]);
    },
  };
}

/**
 * Whether the actor's URL answers 410 Gone itself (not after a redirect).
 * Fetched signed (servers in authorized-fetch mode, and GoToSocial always,
 * refuse unsigned requests) and uncached: Fedify's document cache may still
 * hold the actor as it was.
 */
async function isGone(ctx: RequestContext<void>, username: string, actorId: URL): Promise<boolean> {
  const loader = await ctx.getDocumentLoader({ identifier: username });
  try {
    await loader(actorId.href, { signal: AbortSignal.timeout(10_000) });
    return false;
  } catch (error) {
    // Fedify's FetchError (not exported): the URL fetched last and its response.
    const failed = error as { url?: unknown; response?: unknown };
    return failed.response instanceof Response && failed.response.status === 410 && failed.url instanceof URL && failed.url.href === actorId.href;
  }
}

/**
 * The activity's id is on its actor's server. Fedify trusts an object
 * embedded in an activity when it comes from the activity's own origin, so
 * an id put on someone else's server would let the sender speak for it.
 */
function fromActorsServer(activity: { id: URL | null; actorId: URL | null }): boolean {
  return activity.id !== null && activity.actorId !== null && activity.id.origin === activity.actorId.origin;
}

/** How long a claim on a note holds when its holder stops renewing it. */
const DEFAULT_CLAIM_LEASE_SECONDS = 120;

/** A note another worker is handling right now; thrown so that Fedify retries its delivery later. */
class NoteBusyError extends Error {
  constructor(noteId: string) {
    super(`note ${noteId} is being handled by another worker`);
    this.name = "NoteBusyError";
  }
}

async function onCreate(ctx: InboxContext<void>, create: Create, options: InboxOptions): Promise<void> {
  const { username, store, log } = options;
  if (!fromActorsServer(create)) return;
  const object = await create.getObject(ctx);
  if (!(object instanceof Note) || !object.id || !create.actorId) return;
  // A note id on another server would claim (and so silence) someone else's note.
  if (object.id.origin !== create.actorId.origin) return;
  // The signer (checked by Fedify) must be the author.
  if (object.attributionId && object.attributionId.href !== create.actorId.href) return;
  const botId = ctx.getActorUri(username);
  if (create.actorId.href === botId.href) return;
  const author = await authorOf(ctx, create, options.actors);
  if (!author?.id || author.id.href !== create.actorId.href) return;

  const audience = await audienceOf(object, create, { actorId: botId, profileUrls: [] }, author);
  if (!audience.addressesBot) return;
  const noteId = object.id.href;
  const lease = options.claimLeaseSeconds ?? DEFAULT_CLAIM_LEASE_SECONDS;
  const claim = await store.fediverse.claimNote(noteId, create.id?.href ?? null, author.id.href, lease);
  if (claim.status === "answered") {
    log.debug({ note: noteId }, "fediverse: note already handled");
    return;
  }
  // Another worker is on it (a duplicate delivery): Fedify retries this one
  // later, and by then it is answered — or, if that worker died, taken over.
  if (claim.status === "busy") throw new NoteBusyError(noteId);

  const held = new NoteClaim(store.fediverse, noteId, claim.token, (lease * 1000) / 5);
  const note: HeldNote = { noteId, object, author, audience, claim: held };
  const failuresBefore = claim.status === "resume" ? claim.failures : 0;
  try {
    // A try before this one failed for the last time but could not say so.
    if (failuresBefore >= MAX_NOTE_FAILURES) return await giveUp(ctx, note, options);
    await answer(ctx, note, claim.status === "resume" ? claim.replies : null, options);
  } catch (error) {
    // Taken over by another worker (this one had stopped renewing): it
    // answers; Fedify retries this delivery later, and finds it answered.
    if (error instanceof NoteClaimLostError || held.lost) throw new NoteBusyError(noteId);
    // Counted, and the claim released for Fedify's next retry (kept after
    // the last try, to close the note); with the database unreachable, neither.
    const release = failuresBefore + 1 < MAX_NOTE_FAILURES;
    const failures = await store.fediverse
      .noteFailed(noteId, held.token, { release })
      .catch((e: unknown) => (e instanceof NoteClaimLostError ? null : undefined));
    if (failures === null) throw new NoteBusyError(noteId);
    if (failures === undefined || failures < MAX_NOTE_FAILURES) throw error;
    log.error({ note: noteId, failures, err: error }, "fediverse: gave up on a message");
    await giveUp(ctx, note, options);
  } finally {
    held.end();
  }
}

/** A note being answered, with what was learnt of it on receipt. */
interface HeldNote {
  noteId: string;
  object: Note;
  author: Actor;
  audience: { isDirect: boolean };
  /** The claim it is answered under. */
  claim: NoteClaim;
}

/** Tries of a message that fail before its sender is told it could not be answered (with Fedify's back-off between them). */
export const MAX_NOTE_FAILURES = 5;

/** Runs the message through the engine (unless its replies were saved by a try before) and queues the replies. */
async function answer(ctx: InboxContext<void>, held: HeldNote, saved: string[] | null, options: InboxOptions): Promise<void> {
  const { store, engine, log } = options;
  const { noteId, object, author, audience } = held;
  const isBot = isBotActor(author);
  const acct = isBot ? null : await confirmAcct(author.id!, options.acct);
  let texts = saved;
  let handledAs = "resumed";
  if (!texts) {
    const incoming: Incoming = {
      channel: "fediverse",
      sender: { platform: "fediverse", stableId: author.id!.href, handle: acct, apiBase: author.id!.origin, isBot },
      ...contentOf(object),
      mentions: await mentionsOf(object),
      isPrivate: audience.isDirect,
      replyTo: noteId,
    };
    const outcome = await engine.handle(incoming);
    handledAs = outcome.handledAs;
    // On the fediverse a private answer is always possible: every reply goes
    // by DM, and the "answered in private" notice is not needed.
    const hasPrivate = outcome.replies.some((r) => r.visibility === "private");
    texts = outcome.replies.filter((r) => !(hasPrivate && r.kind === "notice")).map((r) => r.text);
    // Kept until queued: a process dying now leaves them for the next one.
    if (texts.length) await store.fediverse.saveReplies(noteId, held.claim.token, texts);
  }
  const sent = await queueAndClose(ctx, held, acct, texts, options);
  log.debug({ note: noteId, handledAs, sent }, "fediverse: message handled");
  options.onHandled?.({ noteId, handledAs, replies: sent });
}

/**
 * Closes a message that kept failing: its sender (unless a bot) is told it
 * could not be answered, in their language, and it is marked answered.
 */
async function giveUp(ctx: InboxContext<void>, held: HeldNote, options: InboxOptions): Promise<void> {
  const { author, object } = held;
  const isBot = isBotActor(author);
  const acct = isBot ? null : await confirmAcct(author.id!, options.acct).catch(() => null);
  const sender = { platform: "fediverse" as const, stableId: author.id!.href, handle: acct, isBot };
  const texts = isBot ? [] : [await options.engine.couldNotAnswer({ channel: "fediverse", sender, ...contentOf(object), isPrivate: held.audience.isDirect })];
  const sent = await queueAndClose(ctx, held, acct, texts, options);
  options.onHandled?.({ noteId: held.noteId, handledAs: "gave-up", replies: sent });
}

/**
 * Queues `texts` as replies to the note and marks it answered, in one
 * transaction: a worker dying in between leaves neither, and the next
 * delivery sends them — once. A claim lost meanwhile (NoteClaimLostError)
 * leaves neither too: the worker that took the note over answers it.
 */
async function queueAndClose(ctx: InboxContext<void>, held: HeldNote, acct: string | null, texts: readonly string[], options: InboxOptions): Promise<number> {
  const { username, store } = options;
  const send = () => sendReplies(ctx, { username, delivery: options.delivery, recipient: held.author, acct, inReplyTo: held.object.id!, texts });
  return store.transaction(async (s) => {
    const n = texts.length ? await options.batchOutbox(send, s.db) : 0;
    await s.fediverse.markAnswered(held.noteId, held.claim.token);
    return n;
  });
}

/** The activity's actor: from this process's cache, else as Fedify gets it (then cached). */
async function authorOf(ctx: InboxContext<void>, create: Create, cache: TtlCache<Actor> | undefined): Promise<Actor | null> {
  const actorId = create.actorId;
  const cached = actorId ? cache?.get(actorId.href) : undefined;
  if (cached) return cached;
  const author = await create.getActor(ctx);
  if (cache && actorId && author?.id?.href === actorId.href) cache.set(actorId.href, author);
  return author;
}
