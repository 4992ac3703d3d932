/**
 * `reconnect [all|N|@handle…] [bluesky|mastodon]` / `reconnecter`: follow
 * matches from the person's own account (src/reconnect runs the job), and
 * `auto on|off`: follow newcomers automatically. Answers are private: they
 * carry counts about the person's graph and one-time links.
 */
import type { Identity, TargetPlatform } from "../../store/index.ts";
import type { JobRequest } from "../../store/reconnect-jobs.ts";
import { say, tell, type CommandContext, type Part } from "../context.ts";
import type { Command } from "../registry.ts";
import { parseAccountName } from "./accounts.ts";

/** One-time links are valid this long (hours), as `Reconnector` makes them. */
const LINK_HOURS = 24;

interface Selection {
  platform: TargetPlatform;
  request: JobRequest;
  first: number | null;
  names: string[];
}

function parseSelection(ctx: CommandContext): Selection | undefined {
  const { registry } = ctx;
  const selection: Selection = { platform: ctx.sender.platform, request: "all", first: null, names: [] };
  for (const arg of ctx.args) {
    if (registry.is(arg, "bluesky")) selection.platform = "bluesky";
    else if (registry.is(arg, "fediverse")) selection.platform = "fediverse";
    else if (registry.is(arg, "all")) selection.request = "all";
    else if (/^[1-9][0-9]{0,5}$/.test(arg)) {
      selection.request = "first";
      selection.first = Number(arg);
    } else {
      const name = parseAccountName(arg);
      if (!name || name.platform === "x") return undefined;
      selection.names.push(ctx.secret(name.handle));
    }
  }
  if (selection.names.length > 0) {
    if (selection.first !== null) return undefined;
    selection.request = "named";
    // Named accounts say which platform they are on.
    const platforms = new Set(selection.names.map((n) => (n.includes("@") ? "fediverse" : "bluesky")));
    if (platforms.size > 1) return undefined;
    selection.platform = [...platforms][0] as TargetPlatform;
  }
  return selection;
}

/** The sender's identity (progress and summary go back where they asked). */
function senderIdentity(ctx: CommandContext): Identity | undefined {
  return ctx.person!.identities.find((i) => i.platform === ctx.sender.platform && i.stableId === ctx.sender.stableId);
}

export const reconnect: Command = {
  id: "reconnect",
  needsPerson: true,
  async run(ctx) {
    const { locale, registry } = ctx;
    const selection = parseSelection(ctx);
    if (!selection) return [say(locale.m.usage(registry.usage("reconnect", locale)))];
    if (!ctx.reconnect) throw new Error("reconnect: no ReconnectService in the engine context");
    const me = ctx.person!.person.id;
    const parts: Part[] = [];
    let targets: number[];
    if (selection.request === "named") {
      targets = [];
      const unknown: string[] = [];
      for (const handle of selection.names) {
        const identity = await ctx.store.identities.find({ platform: selection.platform, handle });
        const states = identity ? await ctx.store.conversation.matchStates(me, identity.personId) : [];
        const state = states.find((s) => s.platform === selection.platform)?.state;
        if (!identity || !state || state === "ignored") unknown.push(handle);
        else if (state === "followed" || state === "already_following") parts.push(tell(locale.m.alreadyFollowed(handle)));
        else targets.push(identity.personId);
      }
      if (unknown.length > 0) parts.push(tell(locale.r.unknownNames(unknown)));
      if (targets.length === 0) return parts;
    } else {
      targets = await ctx.store.reconnectJobs.selectTargets(me, selection.platform, selection.first);
    }
    const result = await ctx.reconnect.request({
      personId: me,
      platform: selection.platform,
      request: selection.request,
      targets,
      notifyIdentityId: senderIdentity(ctx)?.id ?? null,
    });
    switch (result.status) {
      case "no_identity":
        parts.push(tell(locale.r.noAccount(selection.platform, registry.usage("link", locale))));
        break;
      case "nothing":
        parts.push(tell(locale.r.nothing(selection.platform)));
        break;
      case "queued":
        ctx.effect({ type: "matches-changed", personId: me });
        parts.push(tell(locale.r.queued(selection.platform, result.total, result.added)));
        break;
      case "needs_authorization":
        parts.push(
          tell(
            locale.r.needsAuthorization({
              platform: selection.platform,
              url: ctx.secret(result.connectUrl),
              hours: LINK_HOURS,
              total: result.total,
              exportUrl: result.exportUrl && ctx.secret(result.exportUrl),
            }),
          ),
        );
        break;
    }
    return parts;
  },
};

export const auto: Command = {
  id: "auto",
  needsPerson: true,
  async run(ctx) {
    const { locale, registry } = ctx;
    const arg = ctx.args.length === 1 ? ctx.args[0] : undefined;
    const on = registry.is(arg, "on") ? true : registry.is(arg, "off") ? false : undefined;
    if (on === undefined) return [say(locale.m.usage(registry.usage("auto", locale)))];
    const me = ctx.person!.person.id;
    await ctx.store.people.updateSettings(me, { autoReconnect: on });
    ctx.effect({ type: "settings-changed", personId: me });
    if (!on) return [say(locale.r.autoOff)];
    if (!ctx.reconnect) throw new Error("auto: no ReconnectService in the engine context");
    const platforms: TargetPlatform[] = [];
    const links: { platform: TargetPlatform; url: string }[] = [];
    for (const identity of ctx.person!.identities) {
      if (identity.platform === "x" || !identity.stableId || identity.verifiedBy === "archive") continue;
      platforms.push(identity.platform);
      if (await ctx.store.authorizations.get(identity.id).catch(() => undefined)) {
        // Already authorized: follow the matches waiting now; newcomers follow by the periodic sweep.
        const targets = await ctx.store.reconnectJobs.selectTargets(me, identity.platform);
        if (targets.length > 0) {
          await ctx.reconnect.request({ personId: me, platform: identity.platform, request: "all", targets, notifyIdentityId: identity.id });
        }
      } else {
        links.push({ platform: identity.platform, url: ctx.secret(await ctx.reconnect.connectLink(me, identity.id)) });
      }
    }
    return [tell(links.length > 0 ? locale.r.autoOnNeedsAuthorization(links) : locale.r.autoOn(platforms))];
  },
};
