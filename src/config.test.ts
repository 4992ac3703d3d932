import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.ts";

describe("loadConfig", () => {
  it("takes a cron expression for announcements, and names the variable when it is not one", () => {
    expect(loadConfig({ ANNOUNCE_CRON: "30 9 * * 1" }).announceCron).toBe("30 9 * * 1");
    expect(loadConfig({}).announceCron).toBe("0 18 * * *");
    expect(() => loadConfig({ ANNOUNCE_CRON: "every evening" })).toThrow(ConfigError);
    expect(() => loadConfig({ ANNOUNCE_CRON: "61 * * * *" })).toThrow(/ANNOUNCE_CRON: not a cron expression/);
  });

  it("takes for DEFAULT_LANGUAGE any language the bots have a locale for, and names them when it is another", () => {
    expect(loadConfig({}).defaultLanguage).toBe("fr");
    expect(loadConfig({ DEFAULT_LANGUAGE: " EN " }).defaultLanguage).toBe("en");
    expect(() => loadConfig({ DEFAULT_LANGUAGE: "de" })).toThrow(/DEFAULT_LANGUAGE: not a language the bots speak \(en, fr\)/);
  });

  it("defaults PUBLIC_URL to this machine on the port it listens on", () => {
    expect(loadConfig({}).publicUrl.href).toBe("http://localhost:8080/");
    expect(loadConfig({ PORT: "18081" }).publicUrl.href).toBe("http://localhost:18081/");
    expect(loadConfig({ PORT: "18081", PUBLIC_URL: "https://bot.example" }).publicUrl.href).toBe("https://bot.example/");
  });
});
