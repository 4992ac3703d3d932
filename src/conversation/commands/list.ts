/** `list [failed] [bluesky|mastodon] [page]` / `liste`: the matched accounts (or the failed ones), a page at a time. */
import type { TargetPlatform } from "../../store/index.ts";
import { say, tell } from "../context.ts";
import type { Command } from "../registry.ts";
import { profileUrl } from "./accounts.ts";

/** Entries per page: a Bluesky chat message holds 1,000 characters, a fediverse DM more. */
export const LIST_PAGE_SIZE: Record<TargetPlatform, number> = { bluesky: 8, fediverse: 20 };

export const list: Command = {
  id: "list",
  needsPerson: true,
  async run(ctx) {
    const { locale, registry } = ctx;
    let platform: TargetPlatform = ctx.sender.platform;
    let page = 1;
    let onlyFailed = false;
    for (const arg of ctx.args) {
      if (registry.is(arg, "failed")) onlyFailed = true;
      else if (registry.is(arg, "bluesky")) platform = "bluesky";
      else if (registry.is(arg, "fediverse")) platform = "fediverse";
      else if (/^[1-9][0-9]{0,5}$/.test(arg)) page = Number(arg);
      else return [say(locale.m.usage(registry.usage("list", locale)))];
    }
    const result = await ctx.store.matches.list(ctx.person!.person.id, platform, {
      page,
      pageSize: LIST_PAGE_SIZE[ctx.sender.platform],
      ...(onlyFailed ? { states: ["failed"] as const } : {}),
    });
    if (result.total === 0) return [tell(onlyFailed ? locale.r.noFailures(platform) : locale.m.listEmpty(platform))];
    const lines = [locale.m.listTitle(platform, result.page, result.pages, result.total)];
    result.entries.forEach((e, i) => {
      const handle = e.handle ?? e.stableId ?? "?";
      ctx.secret(handle);
      if (e.stableId) ctx.secret(e.stableId);
      if (e.xUsername) ctx.secret(e.xUsername);
      lines.push(
        locale.m.listEntry({
          n: (result.page - 1) * LIST_PAGE_SIZE[ctx.sender.platform] + i + 1,
          handle,
          xUsername: e.xUsername,
          state: e.state,
          // A follow request a locked account has not accepted yet reads as such, not as a follow.
          reason: e.state === "failed" || (e.state === "followed" && e.reason?.startsWith("requested")) ? e.reason : null,
          url: profileUrl(platform, e.handle, e.stableId),
        }),
      );
    });
    if (result.page < result.pages) {
      const platformWord = locale.keywords[platform][0]!;
      const failedWord = onlyFailed ? ` ${locale.keywords.failed[0]}` : "";
      lines.push(locale.m.listNext(`${registry.word("list", locale)}${failedWord} ${platformWord} ${result.page + 1}`));
    }
    return [tell(lines.join("\n"))];
  },
};
