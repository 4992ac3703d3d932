/**
 * The settings commands: `notify on|off` / `notifications oui|non`,
 * `language fr|en` / `langue fr|en`, and `stop` (the bot never writes first again).
 */
import { findLocale, LOCALES, localeCodes } from "../i18n/index.ts";
import { say } from "../context.ts";
import { commandWord, fold } from "../parse.ts";
import type { Command } from "../registry.ts";

export const notify: Command = {
  id: "notify",
  needsPerson: true,
  async run(ctx) {
    const { locale, registry } = ctx;
    const arg = ctx.args.length === 1 ? ctx.args[0] : undefined;
    const on = registry.is(arg, "on") ? true : registry.is(arg, "off") ? false : undefined;
    if (on === undefined) return [say(locale.m.usage(registry.usage("notify", locale)))];
    await ctx.store.people.updateSettings(ctx.person!.person.id, { notify: on });
    ctx.effect({ type: "settings-changed", personId: ctx.person!.person.id });
    return [say(on ? locale.m.notifyOn : locale.m.notifyOff)];
  },
};

export const language: Command = {
  id: "language",
  needsPerson: true,
  async run(ctx) {
    const { locale, registry } = ctx;
    // Compared as command words are: `en.`, `«fr»` and `Français !` count.
    const arg = ctx.args.length === 1 ? commandWord(ctx.args[0]!) : undefined;
    const chosen =
      findLocale(arg) ?? Object.values(LOCALES).find((l) => arg !== undefined && fold(l.name) === arg);
    if (!chosen) {
      return [say(`${locale.m.languageUnknown(localeCodes())}\n${locale.m.usage(registry.usage("language", locale))}`)];
    }
    await ctx.store.people.updateSettings(ctx.person!.person.id, { language: chosen.code });
    ctx.effect({ type: "settings-changed", personId: ctx.person!.person.id });
    ctx.switchLocale(chosen);
    return [say(chosen.m.languageSet)];
  },
};

export const stop: Command = {
  id: "stop",
  needsPerson: true,
  async run(ctx) {
    const personId = ctx.person!.person.id;
    // A public welcome mentions (so notifies) the person: that is writing first too.
    await ctx.store.people.stop(personId);
    // A reconnection under way would go on following and reporting by DM.
    const cancelled = await ctx.store.reconnectJobs.cancelOpen(personId);
    ctx.effect({ type: "settings-changed", personId });
    const { locale, registry } = ctx;
    return [say(locale.m.stopped), ...(cancelled > 0 ? [say(locale.m.stoppedJobs(cancelled, registry.word("reconnect", locale)))] : [])];
  },
};
