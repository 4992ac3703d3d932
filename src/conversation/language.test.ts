import { describe, expect, it } from "vitest";
import { COMMANDS } from "./commands/index.ts";
import { LOCALES } from "./i18n/index.ts";
import { chooseLocale, detectLanguage } from "./language.ts";
import { Registry } from "./registry.ts";

const registry = new Registry(COMMANDS);
const detect = (text: string) => {
  const tokens = text.split(/\s+/).filter(Boolean);
  return detectLanguage(tokens, tokens[0] ? registry.find(tokens[0]) : undefined);
};

describe("language detection", () => {
  it("knows a command word of one language", () => {
    expect(detect("aide")).toBe("fr");
    expect(detect("statut")).toBe("fr");
    expect(detect("help")).toBe("en");
    expect(detect("list mastodon 2")).toBe("en");
    expect(detect("DÉLIER x")).toBe("fr");
  });

  it("uses the arguments when the command word is shared", () => {
    expect(detect("stop")).toBeUndefined();
    expect(detect("notifications oui")).toBe("fr");
    expect(detect("notifications off")).toBeUndefined();
  });

  it("reads free text", () => {
    expect(detect("je voudrais retrouver mes amis")).toBe("fr");
    expect(detect("qu'est-ce que tu fais ?")).toBe("fr");
    expect(detect("I would like to find my friends")).toBe("en");
    expect(detect("what can you do for me?")).toBe("en");
    expect(detect("🙂 🙂")).toBeUndefined();
  });

  it("prefers the saved setting, then the message, then the default", () => {
    expect(chooseLocale("en", "fr", "fr").code).toBe("en");
    expect(chooseLocale(null, "fr", "en").code).toBe("fr");
    expect(chooseLocale(null, undefined, "fr").code).toBe("fr");
    expect(chooseLocale("de", undefined, "en").code).toBe("en");
  });
});

describe("locales", () => {
  it("each give every command a word, usage and summary", () => {
    for (const locale of Object.values(LOCALES)) {
      for (const c of COMMANDS) {
        expect(locale.commands[c.id].words.length, `${locale.code} ${c.id}`).toBeGreaterThan(0);
        expect(locale.commands[c.id].summary, `${locale.code} ${c.id}`).not.toBe("");
      }
    }
  });

  it("generate help from the registry in each language", () => {
    expect(registry.helpLines(LOCALES.fr!)[0]).toMatch(/^• aide : /);
    expect(registry.helpLines(LOCALES.en!)).toHaveLength(COMMANDS.length);
    expect(registry.usage("notify", LOCALES.fr!)).toBe("notifications oui|non");
  });

  it("refuse a word that would call two commands", () => {
    const fr = LOCALES.fr!;
    const clash = { ...fr, commands: { ...fr.commands, stop: { ...fr.commands.stop, words: ["aide"] } } };
    expect(() => new Registry(COMMANDS, [clash])).toThrow(/calls both/);
  });
});
