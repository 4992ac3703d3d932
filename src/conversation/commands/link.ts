/**
 * `link @handle` / `lier @compte`: a code to send from that other account.
 * `link <code>` / `lier <code>`: redeem it, joining the two identities into
 * one person. A code made for `@handle` on a platform only works from the
 * account the platform vouches is `@handle`; X accounts are never linked by
 * name (anyone can type one). Codes are single use, expire, are rate-limited
 * per person (creation) and per sender (wrong tries), and are never accepted
 * in public.
 */
import { canonicalHandle } from "../../store/identities.ts";
import { IdentityTakenError, type PersonView, type TargetPlatform } from "../../store/index.ts";
import { normalizeLinkCode } from "../../store/link-codes.ts";
import { say, tell, type CommandContext, type Part } from "../context.ts";
import type { Command } from "../registry.ts";
import { parseAccountName, type AccountName } from "./accounts.ts";

/** The shape of a code from store/link-codes.ts (no 0/O, 1/I/L). */
const CODE = /^[2-9A-HJ-NP-Z]{8}$/;

/**
 * A bare word that is a code gone wrong rather than a name: a character
 * missing or extra, a 0/O or 1/I/L slipped in. Codes are shown in capitals
 * and hold digits; X usernames are rarely all capitals and never hold a
 * dash. A lower-case word without digits is left to be read as a name.
 */
function looksLikeCode(word: string): boolean {
  if (!/^[A-Za-z0-9-]+$/.test(word)) return false;
  const code = normalizeLinkCode(word);
  if (code.length < 6 || code.length > 10) return false;
  return word.includes("-") || /[0-9]/.test(word) || word === word.toUpperCase();
}

/** An X profile address written without its scheme (`x.com/jack`), which is no Bluesky handle. */
const X_ADDRESS = /^(?:www\.|mobile\.)?(?:x|twitter)\.com\/@?([A-Za-z0-9_]{1,50})\/?$/i;

export const link: Command = {
  id: "link",
  needsPerson: false,
  async run(ctx) {
    const { registry, locale } = ctx;
    const arg = ctx.args.length === 1 ? ctx.args[0]! : undefined;
    const usage = [say(locale.m.usage(registry.usage("link", locale)))];
    if (!arg) return usage;
    const bare = !/[@./:]/.test(arg);
    if (bare && CODE.test(normalizeLinkCode(arg))) return redeem(ctx, normalizeLinkCode(arg));
    // `link mastodon`, as `unlink mastodon` is written: which account, it does not say.
    if (bare && (registry.is(arg, "bluesky") || registry.is(arg, "fediverse"))) return usage;
    // A mistyped code is a wrong code, and counts as one against guessing.
    if (bare && looksLikeCode(arg)) return redeem(ctx, normalizeLinkCode(arg));
    if (X_ADDRESS.test(arg)) return [say(locale.m.linkXRefused)];
    const name = parseAccountName(arg);
    if (name) return start(ctx, name);
    return usage;
  },
};

/** The identity already belongs to someone else (held by id, or its acct by another actor). */
const isTaken = (error: unknown) =>
  error instanceof IdentityTakenError || (error as { code?: unknown } | null)?.code === "23505";

/**
 * The sender's person, when a message of theirs handled at the same time
 * made them one after this message found them unknown: their account then
 * "belongs to someone" — to them. Undefined if it is truly someone else's.
 */
export async function recordedMeanwhile(ctx: CommandContext): Promise<PersonView | undefined> {
  if (ctx.person) return undefined;
  return ctx.store.findPerson({ platform: ctx.sender.platform, stableId: ctx.sender.stableId });
}

const sameHandle = (platform: TargetPlatform, a: string, b: string) =>
  canonicalHandle(platform, a).toLowerCase() === canonicalHandle(platform, b).toLowerCase();

async function start(ctx: CommandContext, name: AccountName): Promise<Part[]> {
  const { m } = ctx.locale;
  if (name.platform === "x") return [say(m.linkXRefused)];
  const platform = name.platform;
  ctx.secret(name.handle);
  if (platform === ctx.sender.platform && ctx.sender.handle && sameHandle(platform, name.handle, ctx.sender.handle)) {
    return [say(m.linkSameAccount)];
  }
  let personId = ctx.person?.person.id;
  if (ctx.person) {
    const onPlatform = ctx.person.identities.filter((i) => i.platform === platform);
    if (onPlatform.some((i) => i.handle && sameHandle(platform, i.handle, name.handle))) {
      return [tell(m.linkAlreadyYours(name.handle))];
    }
    // One account per platform: a second one would make "reconnect on Bluesky" ambiguous.
    const other = onPlatform[0];
    if (other) {
      ctx.secret(other.handle ?? "");
      const unlink = `${ctx.registry.word("unlink", ctx.locale)} ${ctx.locale.keywords[platform][0]}`;
      return [tell(m.linkPlatformTaken(platform, other.handle ?? other.stableId ?? "?", unlink))];
    }
    const since = new Date(ctx.now.getTime() - 3600_000);
    if ((await ctx.store.linkCodes.countSince(ctx.person.person.id, since)) >= ctx.limits.codesPerHour) {
      return [say(m.linkTooManyCodes)];
    }
  } else {
    // One account per platform: the code could never be redeemed by the account it names.
    if (platform === ctx.sender.platform) return [tell(m.linkSamePlatform(platform, name.handle))];
    // A newcomer starting from here: they become a person with this account.
    try {
      personId = await ctx.store.transaction(async (s) => {
        const person = await s.people.create();
        await s.identities.attach(person.id, {
          platform: ctx.sender.platform,
          stableId: ctx.sender.stableId,
          handle: ctx.sender.handle,
          apiBase: ctx.sender.apiBase ?? null,
          verifiedBy: "dm",
        });
        return person.id;
      });
    } catch (error) {
      if (!isTaken(error)) throw error;
      const person = await recordedMeanwhile(ctx);
      // Made a person by their own other message: carry on as that person.
      if (person) return start({ ...ctx, person }, name);
      return [say(m.linkAccountTaken)];
    }
    ctx.effect({ type: "identity-recorded", personId });
  }
  const { code } = await ctx.store.linkCodes.create(personId!, {
    ttlSeconds: ctx.limits.codeTtlSeconds,
    platform,
    handle: name.handle,
  });
  ctx.secret(code);
  ctx.effect({ type: "link-code-created", personId: personId!, platform });
  return [
    tell(
      m.linkCodeCreated({
        code,
        handle: name.handle,
        platform,
        minutes: Math.round(ctx.limits.codeTtlSeconds / 60),
        command: ctx.registry.word("link", ctx.locale),
      }),
    ),
  ];
}

class NotForThisAccount extends Error {}

/** Joining would leave one person two accounts on `platform`. */
class PlatformTaken extends Error {
  readonly platform: "bluesky" | "fediverse";
  readonly handle: string;
  constructor(platform: "bluesky" | "fediverse", handle: string) {
    super(`already an account on ${platform}`);
    this.platform = platform;
    this.handle = handle;
  }
}

type Redemption = { kind: "invalid" } | { kind: "already" } | { kind: "joined"; personId: number; mergedPersonId?: number };

async function redeem(ctx: CommandContext, code: string): Promise<Part[]> {
  const { m } = ctx.locale;
  const { store, sender, limits } = ctx;
  ctx.secret(code);
  if (!ctx.incoming.isPrivate) {
    // Posted for all to see: burn it before anyone else can use it.
    await store.linkCodes.redeem(code);
    return [say(m.linkCodeInPublic)];
  }
  const minutes = Math.round(limits.codeTtlSeconds / 60);
  if ((await store.conversation.codeFailures(sender, ctx.now, 3600)) >= limits.codeFailuresPerHour) {
    return [say(m.linkTooManyFailures)];
  }
  let result: Redemption;
  try {
    result = await store.transaction(async (s): Promise<Redemption> => {
      // The people before the code: a forget or a merge holds a person and
      // then reaches their codes (src/store/lock-order.ts). From the first
      // lock on, no merge can move the code to another owner.
      await s.people.holdPeopleChanges();
      const owner = await s.linkCodes.ownerOf(code);
      if (owner === undefined) return { kind: "invalid" };
      const mine = ctx.person?.person.id;
      const held = await s.people.lockAll(mine === undefined ? [owner] : [owner, mine]);
      // Forgotten in between (theirs or ours): nothing to join.
      if (!held.includes(owner) || (mine !== undefined && !held.includes(mine))) return { kind: "invalid" };
      const grant = await s.linkCodes.redeem(code);
      if (!grant || grant.personId !== owner) return { kind: "invalid" };
      if (grant.platform !== null && grant.platform !== sender.platform) throw new NotForThisAccount();
      if (grant.handle !== null && !(sender.handle && sameHandle(sender.platform, grant.handle, sender.handle))) {
        throw new NotForThisAccount();
      }
      if (mine === grant.personId) return { kind: "already" };
      // One account per platform, as when a code is made: the code's owner
      // may have gained one since, or be a newcomer who wrote from one.
      const theirs = await s.identities.listForPerson(owner);
      const ours = mine !== undefined ? await s.identities.listForPerson(mine) : [{ platform: sender.platform, stableId: sender.stableId }];
      for (const platform of ["bluesky", "fediverse"] as const) {
        const a = theirs.find((i) => i.platform === platform);
        const b = ours.find((i) => i.platform === platform);
        if (a && b && a.stableId !== b.stableId) {
          // The one to unlink first: the sender's own person's, else the code owner's.
          const linked = mine !== undefined ? (b as { handle?: string | null; stableId: string | null }) : a;
          throw new PlatformTaken(platform, linked.handle ?? linked.stableId ?? "?");
        }
      }
      if (mine !== undefined) {
        await s.mergePeople(grant.personId, mine);
        return { kind: "joined", personId: grant.personId, mergedPersonId: mine };
      }
      await s.identities.attach(grant.personId, {
        platform: sender.platform,
        stableId: sender.stableId,
        handle: sender.handle,
        apiBase: sender.apiBase ?? null,
        verifiedBy: "dm",
      });
      await s.matches.refreshForFollowers([grant.personId]);
      await s.matches.refreshForTargets([grant.personId]);
      return { kind: "joined", personId: grant.personId };
    });
  } catch (error) {
    // The transaction rolled back: a code meant for another account stays usable by it.
    if (error instanceof NotForThisAccount) result = { kind: "invalid" };
    else if (error instanceof PlatformTaken) {
      ctx.secret(error.handle);
      const unlink = `${ctx.registry.word("unlink", ctx.locale)} ${ctx.locale.keywords[error.platform][0]}`;
      // Unknown here, the sender has nothing to unlink: the account in the way is the code maker's.
      if (!ctx.person) return [tell(m.linkOwnerPlatformTaken(error.platform, error.handle, unlink))];
      return [tell(m.linkPlatformTaken(error.platform, error.handle, unlink))];
    }
    else if (isTaken(error)) {
      // The transaction rolled back, the code with it: redeemed as the person the sender just became.
      const person = await recordedMeanwhile(ctx);
      if (person) return redeem({ ...ctx, person }, code);
      return [say(m.linkAccountTaken)];
    }
    else throw error;
  }
  if (result.kind === "invalid") {
    await store.conversation.recordCodeFailure(sender, ctx.now, 3600);
    return [say(m.linkCodeInvalid(minutes))];
  }
  if (result.kind === "already") return [say(m.linkAlreadyDone)];
  ctx.effect({ type: "linked", personId: result.personId, mergedPersonId: result.mergedPersonId });
  const view = await store.personView(result.personId);
  return [tell(m.linked([...new Set(view?.identities.map((i) => i.platform) ?? [])]))];
}
