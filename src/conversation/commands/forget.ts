/**
 * `forget` then `forget confirm` / `oublier` … `oublier confirmer`: delete
 * everything about the person — identities, settings, matches, codes,
 * authorizations (revoked at their servers first), their X follow edges, and the conversation state kept for
 * each of their accounts. The confirmation must come from the same account
 * within a few minutes.
 */
import { say } from "../context.ts";
import type { Command } from "../registry.ts";
import { revokeAtServers } from "./revoke.ts";

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
      return [say(locale.m.usage(`${word} | ${word} ${locale.keywords.confirm[0]}`))];
    }
    if (!(await store.conversation.takeForget(sender, ctx.now, ctx.limits.forgetConfirmSeconds))) {
      return [say(locale.m.forgetNoRequest(word))];
    }
    const { person, identities } = ctx.person;
    // Tokens die at their servers too, not only here.
    const { hadAppPassword } = await revokeAtServers(ctx, person.id, identities);
    await store.erase(person.id, [sender]);
    ctx.effect({ type: "forgotten", personId: person.id });
    return [say(locale.m.forgetDone), ...(hadAppPassword ? [say(locale.m.forgetAppPassword)] : [])];
  },
};
