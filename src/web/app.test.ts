import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import type { RequestHandler } from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { createWebApp } from "./app.ts";
import { homePage } from "./home.ts";

let db: TestDatabase;
let server: Server;
let base: string;
let ready = false;

beforeAll(async () => {
  db = await createTestDatabase();
  const person = await db.store.people.create();
  await db.store.identities.attach(person.id, { platform: "x", stableId: "1", verifiedBy: "platform" });
  await db.sql`insert into x_follow values (1, 2), (1, 3)`;
  await db.sql`analyze x_follow`;
  const failing: RequestHandler = async (req, _res, next) => {
    if (req.path !== "/boom") return next();
    throw new Error("secret detail at /internal/path.ts:42");
  };
  server = createWebApp({ store: db.store, ready: () => ready, routes: [failing] }).listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  await db.drop();
});

describe("web endpoints", () => {
  it("report health, then readiness once started", async () => {
    expect(await (await fetch(`${base}/healthz`)).text()).toBe("ok\n");
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    ready = true;
    const r = await fetch(`${base}/readyz`);
    expect([r.status, await r.text()]).toEqual([200, "ready\n"]);
  });

  it("serve store gauges in Prometheus format", async () => {
    await db.sql`insert into uploaded_archive (person_id, x_id) select id, 42 from person limit 1`;
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/^reconnexion_uploaded_archives 1$/m);
    expect(text).toMatch(/^reconnexion_people 1$/m);
    expect(text).toMatch(/^reconnexion_x_follow_edges 2$/m);
    expect(text).toMatch(/^reconnexion_identities\{platform="x",verified_by="platform"\} 1$/m);
    expect(text).toMatch(/^reconnexion_matches\{state="pending"\} 0$/m);
  });

  it("answer an unhandled error with a plain 500, never a stack trace", async () => {
    const r = await fetch(`${base}/boom`);
    expect(r.status).toBe(500);
    expect(await r.text()).toBe("Internal error\n");
  });
});

describe("the front page", () => {
  it("says what the bot does and where to write to it, in every language, the default first", async () => {
    let handle: string | undefined;
    const app = createWebApp({ store: db.store, ready: () => true, routes: [homePage({ fediverseAcct: "reconnexion@bot.example", blueskyHandle: () => handle, defaultLanguage: "fr" })] });
    const s = app.listen(0, "127.0.0.1");
    await new Promise((r) => s.once("listening", r));
    try {
      const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}/`;
      const first = await fetch(url);
      expect(first.headers.get("content-type")).toMatch(/text\/html/);
      const page = await first.text();
      expect(page).toContain('<html lang="fr">');
      expect(page.indexOf("Écrivez-moi")).toBeLessThan(page.indexOf("Write to me"));
      expect(page).toContain("<code>@reconnexion@bot.example</code>");
      expect(page).not.toContain("Bluesky: <code>");
      handle = "reconnexion.bsky.social";
      expect(await (await fetch(url)).text()).toContain("Bluesky: <code>@reconnexion.bsky.social</code>");
    } finally {
      await new Promise((r) => s.close(r));
    }
  });
});
