/** `unlink bluesky|mastodon|x` / `délier`: detach one of your accounts. */
import type { Platform } from "../../store/index.ts";
import { say, tell } from "../context.ts";
import type { Command } from "../registry.ts";

export const unlink: Command = {
  id: "unlink",
  needsPerson: true,
  async run(ctx) {
    const { locale, registry } = ctx;
    const arg = ctx.args.length === 1 ? ctx.args[0] : undefined;
    const platform: Platform | undefined = registry.is(arg, "bluesky")
      ? "bluesky"
      : registry.is(arg, "fediverse")
        ? "fediverse"
        : registry.is(arg, "x")
          ? "x"
          : undefined;
    if (!platform) return [say(locale.m.usage(registry.usage("unlink", locale)))];
    const { person, identities } = ctx.person!;
    const detach = identities.filter((i) => i.platform === platform);
    if (detach.length === 0) return [tell(locale.m.unlinkNothing(platform))];
    if (detach.length === identities.length) {
      return [tell(locale.m.unlinkLastIdentity(`${registry.word("forget", locale)}`))];
    }
    for (const identity of detach) await ctx.store.unlink(identity.id);
    ctx.effect({ type: "unlinked", personId: person.id, platform });
    return [tell(locale.m.unlinked(platform))];
  },
};
