/**
 * `forget` then `forget confirm` / `oublier` … `oublier confirmer`: delete
 * everything about the person — identities, settings, matches, codes,
 * authorizations (revoked at their servers first), their X follow edges, and the conversation state kept for
 * each of their accounts. The confirmation must come from the same account
 * within a few minutes.
 */
import type { PersonView } from "../../store/index.ts";
import { say, type CommandContext } from "../context.ts";
import type { Command } from "../registry.ts";
import { revokeAtServers } from "./revoke.ts";

/** Rounds of revoke-then-erase while the person keeps changing under it (each change is a message of theirs). */
const ERASE_TRIES = 5;

/** The person the sender belongs to now (by the account they write from). */
async function personOfSender(ctx: CommandContext): Promise<PersonView | undefined> {
  const found = await ctx.store.identities.find({ platform: ctx.sender.platform, stableId: ctx.sender.stableId });
  return found ? ctx.store.personView(found.personId) : undefined;
}

export const forget: Command = {
  id: "forget",
  needsPerson: false,
  async run(ctx) {
    const { locale, registry, store, sender } = ctx;
    const word = registry.word("forget", locale);
    if (!ctx.person) {
      await store.conversation.forgetSenders([sender]);
      return [say(locale.m.forgetUnknown)];
    }
    if (ctx.args.length === 0) {
      await store.conversation.askForget(sender, ctx.now);
      const confirm = `${word} ${locale.keywords.confirm[0]}`;
      return [say(locale.m.forgetAsk(confirm, Math.round(ctx.limits.forgetConfirmSeconds / 60)))];
    }
    if (ctx.args.length !== 1 || !registry.is(ctx.args[0], "confirm")) {
      return [say(locale.m.usage(registry.usage("forget", locale)))];
    }
    if (!(await store.conversation.takeForget(sender, ctx.now, ctx.limits.forgetConfirmSeconds))) {
      return [say(locale.m.forgetNoRequest(word))];
    }
    // Tokens die at their servers too, not only here. Revoking takes a while:
    // should the person be joined to another (a link code redeemed), or gain
    // or lose an account meanwhile, the person as they are then is revoked
    // and erased — never only the one seen first, leaving the rest behind.
    let view: PersonView | undefined = ctx.person;
    let hadAppPassword = false;
    let tries = 0;
    for (; view && tries < ERASE_TRIES; tries++) {
      const revoked = await revokeAtServers(ctx, view.person.id, view.identities);
      hadAppPassword ||= revoked.hadAppPassword;
      const ids = view.identities.map((i) => i.id);
      const result = await store.eraseAsSeen(view.person.id, ids, [sender]);
      if (result === "erased") {
        ctx.effect({ type: "forgotten", personId: view.person.id });
        break;
      }
      view = await personOfSender(ctx);
    }
    // Still changing after every round: nothing said to be deleted that is not.
    if (view && tries === ERASE_TRIES) return [say(locale.m.couldNotAnswer)];
    return [say(locale.m.forgetDone), ...(hadAppPassword ? [say(locale.m.forgetAppPassword)] : [])];
  },
};
