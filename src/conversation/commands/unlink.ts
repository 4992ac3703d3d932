/** `unlink bluesky|mastodon|x` / `délier`: detach one of your accounts. */
import type { Platform } from "../../store/index.ts";
import { say, tell } from "../context.ts";
import type { Command } from "../registry.ts";
import { revokeAtServers } from "./revoke.ts";

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
    // An uploaded X archive goes with `unlink x` too: it is the person's X data.
    const upload = platform === "x" ? await ctx.store.uploadedArchives.get(person.id) : undefined;
    if (detach.length === 0 && !upload) return [tell(locale.m.unlinkNothing(platform))];
    const forget = registry.word("forget", locale);
    if (detach.length === identities.length) return [tell(locale.m.unlinkLastIdentity(forget))];
    // Left with only X, the person could neither be reached nor ask to be forgotten.
    if (detach.length > 0 && !identities.some((i) => i.platform !== platform && i.platform !== "x")) return [tell(locale.m.unlinkLastReachable(forget))];
    // A job running from this account would go on with what the run holds in
    // memory (an app password logs in again); X's follows chose every job's targets.
    const stopped = await ctx.store.reconnectJobs.cancelOpen(person.id, platform === "x" ? undefined : [platform]);
    // Tokens die at their servers too, not only here. The checks above saw
    // the person as the message arrived; the store checks again, under the
    // person's lock, in case another unlink from their other account won the
    // race (the loser has then stopped that account's jobs and ended its
    // token: the next reconnection asks for a new one).
    const { hadAppPassword } = await revokeAtServers(ctx, person.id, detach);
    const detached = detach.length > 0 ? await ctx.store.detach(person.id, detach.map((i) => i.id)) : "detached";
    if (detached === "last") return [tell(locale.m.unlinkLastIdentity(forget))];
    if (detached === "lastReachable") return [tell(locale.m.unlinkLastReachable(forget))];
    if (upload) await ctx.store.removeUpload(person.id);
    ctx.effect({ type: "unlinked", personId: person.id, platform });
    return [
      ...(detach.length > 0 ? [tell(locale.m.unlinked(platform))] : []),
      ...(upload ? [tell(locale.m.unlinkedUpload)] : []),
      ...(stopped > 0 ? [tell(locale.m.unlinkStoppedJobs(stopped))] : []),
      ...(hadAppPassword ? [tell(locale.m.forgetAppPassword)] : []),
    ];
  },
};
