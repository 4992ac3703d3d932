/** `help` / `aide`: who the bot is, what it knows about you, the commands. */
import { TARGET_PLATFORMS } from "../../store/index.ts";
import { say, tell, type Part } from "../context.ts";
import type { Command } from "../registry.ts";

export const help: Command = {
  id: "help",
  needsPerson: false,
  async run(ctx) {
    const { locale, registry } = ctx;
    if (!ctx.incoming.isPrivate) {
      // In public: short, generic, nothing about the person.
      return [say(locale.m.publicHelp(registry.commands.map((c) => registry.word(c.id, locale))))];
    }
    const commands = [locale.m.commandsTitle, ...registry.helpLines(locale)].join("\n");
    if (!ctx.person) return [say(locale.m.welcome(ctx.sender.platform)), say(commands)];
    const counts = await ctx.store.matches.counts(ctx.person.person.id);
    const about = locale.m.aboutYou({
      platforms: [...new Set(ctx.person.identities.map((i) => i.platform))],
      matches: TARGET_PLATFORMS.map((p) => ({ platform: p, total: counts[p].total })),
    });
    const parts: Part[] = [say(locale.m.intro), tell(about), say(commands)];
    return parts;
  },
};
