/** `ignore @handle` / `ignorer` and `unignore` / `désignorer`: drop a match from lists, or bring it back. */
import type { Part } from "../context.ts";
import { say, tell, type CommandContext } from "../context.ts";
import type { Command, CommandId } from "../registry.ts";
import { parseAccountName } from "./accounts.ts";

/** The person an account name designates, if they are one of the sender's matches. */
async function matchedTarget(ctx: CommandContext, id: CommandId): Promise<Part[] | { target: number; handle: string }> {
  const name = ctx.args.length === 1 ? parseAccountName(ctx.args[0]!) : undefined;
  if (!name) return [say(ctx.locale.m.usage(ctx.registry.usage(id, ctx.locale)))];
  ctx.secret(name.handle);
  const identity = await ctx.store.identities.find({ platform: name.platform, handle: name.handle });
  if (!identity || identity.personId === ctx.person!.person.id) return [tell(ctx.locale.m.noMatchNamed(name.handle))];
  return { target: identity.personId, handle: name.handle };
}

export const ignore: Command = {
  id: "ignore",
  needsPerson: true,
  async run(ctx) {
    const found = await matchedTarget(ctx, "ignore");
    if (Array.isArray(found)) return found;
    const me = ctx.person!.person.id;
    const states = await ctx.store.conversation.matchStates(me, found.target);
    if (states.length === 0) return [tell(ctx.locale.m.noMatchNamed(found.handle))];
    const open = states.filter((s) => s.state === "pending" || s.state === "failed");
    for (const s of open) await ctx.store.matches.setState(me, s.platform, found.target, "ignored");
    // Dropped from lists *and* reconnections: an open job must not follow them either.
    if (open.length > 0) await ctx.store.reconnectJobs.dropTarget(me, found.target, open.map((s) => s.platform));
    if (open.length > 0) ctx.effect({ type: "matches-changed", personId: me });
    if (open.length === 0 && states.every((s) => s.state === "followed" || s.state === "already_following")) {
      return [tell(ctx.locale.m.alreadyFollowed(found.handle))];
    }
    return [tell(ctx.locale.m.ignored(found.handle))];
  },
};

export const unignore: Command = {
  id: "unignore",
  needsPerson: true,
  async run(ctx) {
    const found = await matchedTarget(ctx, "unignore");
    if (Array.isArray(found)) return found;
    const me = ctx.person!.person.id;
    const states = await ctx.store.conversation.matchStates(me, found.target);
    if (states.length === 0) return [tell(ctx.locale.m.noMatchNamed(found.handle))];
    const ignored = states.filter((s) => s.state === "ignored");
    for (const s of ignored) await ctx.store.matches.setState(me, s.platform, found.target, "pending");
    if (ignored.length === 0) return [tell(ctx.locale.m.notIgnored(found.handle))];
    ctx.effect({ type: "matches-changed", personId: me });
    return [tell(ctx.locale.m.unignored(found.handle))];
  },
};
