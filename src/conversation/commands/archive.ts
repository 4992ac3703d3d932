/**
 * `archive`: a private one-time link to the page where the person uploads
 * their X archive (src/web/archive.ts). Someone the bot does not know yet
 * becomes a person with the account they write from, as `link @handle`
 * makes them; the archive's follows then serve their own matching (an
 * archive proves nothing, so it claims no X account: src/store/uploaded-archives.ts).
 */
import { IdentityTakenError } from "../../store/index.ts";
import { say, tell } from "../context.ts";
import type { Command } from "../registry.ts";
import { recordedMeanwhile } from "./link.ts";

/** How long an upload link works. */
export const ARCHIVE_LINK_HOURS = 24;
/** Upload links a person may ask for in an hour. */
export const ARCHIVE_LINKS_PER_HOUR = 5;

export const archive: Command = {
  id: "archive",
  needsPerson: false,
  async run(ctx) {
    const { sender } = ctx;
    let personId = ctx.person?.person.id;
    // The account written from (a person has one per platform).
    let identityId = ctx.person?.identities.find((i) => i.platform === sender.platform)?.id;
    if (personId === undefined || identityId === undefined) {
      try {
        const created = await ctx.store.transaction(async (s) => {
          const person = await s.people.create();
          const identity = await s.identities.attach(person.id, {
            platform: sender.platform,
            stableId: sender.stableId,
            handle: sender.handle,
            apiBase: sender.apiBase ?? null,
            verifiedBy: "dm",
          });
          return { personId: person.id, identityId: identity.id };
        });
        ({ personId, identityId } = created);
      } catch (error) {
        if (!(error instanceof IdentityTakenError || (error as { code?: unknown } | null)?.code === "23505")) throw error;
        // Made a person by their own other message meanwhile: carry on as that person.
        const person = await recordedMeanwhile(ctx);
        if (!person) return [tell(ctx.locale.m.linkAccountTaken)];
        return archive.run({ ...ctx, person });
      }
      ctx.effect({ type: "identity-recorded", personId });
    }
    const since = new Date(ctx.now.getTime() - 3600_000);
    if ((await ctx.store.webLinks.countSince(personId, "archive", since)) >= ARCHIVE_LINKS_PER_HOUR) return [say(ctx.locale.m.archiveTooManyLinks)];
    const token = await ctx.store.webLinks.create("archive", personId, identityId, ARCHIVE_LINK_HOURS * 3600);
    const url = ctx.secret(new URL(`/archive/${token}`, ctx.config.publicUrl).href);
    return [tell(ctx.locale.m.archiveLink({ url, hours: ARCHIVE_LINK_HOURS }))];
  },
};
