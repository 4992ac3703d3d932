import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import express, { type RequestHandler } from "express";
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
  const tinyForm = express.Router().post("/tiny-form", express.urlencoded({ extended: false, limit: "1kb" }), (_req, res) => void res.send("ok"));
  server = createWebApp({ store: db.store, ready: () => ready, routes: [failing, tinyForm], defaultLanguage: "fr" }).listen(0, "127.0.0.1");
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
    expect(text).toMatch(/^reconnexion_reconnect_jobs\{state="queued"\} 0$/m);
    expect(text).toMatch(/^reconnexion_fediverse_queue_messages\{queue="outbox"\} 0$/m);
  });

  it("show the work waiting: reconnection jobs by state, fediverse queues and how long their oldest message has waited", async () => {
    const [person] = await db.sql<{ id: number }[]>`select id from person limit 1`;
    await db.sql`insert into reconnect_job (person_id, platform, state, request) values (${person!.id}, 'bluesky', 'waiting', 'all')`;
    await db.sql`
      insert into fediverse_queue (queue, message, run_at) values
        ('outbox', '{}', now() - interval '90 seconds'), ('outbox', '{}', now()), ('outbox', '{}', now() + interval '1 hour')`;
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/^reconnexion_reconnect_jobs\{state="waiting"\} 1$/m);
    expect(text).toMatch(/^reconnexion_fediverse_queue_messages\{queue="outbox"\} 3$/m);
    expect(text).toMatch(/^reconnexion_fediverse_queue_messages\{queue="inbox"\} 0$/m);
    expect(Number(/^reconnexion_fediverse_queue_oldest_seconds\{queue="outbox"\} (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(90);
    expect(text).toMatch(/^reconnexion_authorization_revocations\{state="waiting"\} 0$/m);
    await db.sql`insert into authorization_revocation (kind, identity_id, payload, attempts) values ('mastodon-oauth', 1, '\\x00', 0), ('mastodon-oauth', 2, '\\x00', 3)`;
    const after = await (await fetch(`${base}/metrics`)).text();
    expect(after).toMatch(/^reconnexion_authorization_revocations\{state="waiting"\} 2$/m);
    expect(after).toMatch(/^reconnexion_authorization_revocations\{state="tried"\} 1$/m);
    await db.sql`delete from authorization_revocation`;
    await db.sql`delete from fediverse_queue`;
    await db.sql`delete from reconnect_job`;
  });

  it("answer an unhandled error with a 500 page in the browser's language, never a stack trace", async () => {
    const page = await fetch(`${base}/boom`, { headers: { Accept: "text/html", "Accept-Language": "fr-FR,fr;q=0.9" } });
    expect(page.status).toBe(500);
    const text = await page.text();
    expect(text).toContain('<html lang="fr"');
    expect(text).toContain("Un problème de notre côté");
    expect(text).not.toContain("secret detail");
    // Machines get a plain line, in the default language's absence of any.
    const plain = await fetch(`${base}/boom`, { headers: { Accept: "application/activity+json" } });
    expect([plain.status, await plain.text()]).toEqual([500, "Internal error\n"]);
  });

  it("answer a path nobody serves with a translated page pointing home (a browser), or a plain 404", async () => {
    const page = await fetch(`${base}/nowhere`, { headers: { Accept: "text/html", "Accept-Language": "en" } });
    expect(page.status).toBe(404);
    const text = await page.text();
    expect(text).toContain("Nothing here");
    expect(text).toContain('href="/"');
    expect(text).not.toContain("Cannot GET");
    const fallback = await fetch(`${base}/nowhere`, { headers: { Accept: "text/html" } });
    expect(await fallback.text()).toContain('<html lang="fr"');
    const plain = await fetch(`${base}/nowhere`, { headers: { Accept: "application/json" } });
    expect([plain.status, await plain.text()]).toEqual([404, "Not found\n"]);
    // What Mastodon sends when it fetches an object: never HTML.
    const mastodon = await fetch(`${base}/nowhere`, { headers: { Accept: 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams", text/html;q=0.1' } });
    expect(await mastodon.text()).toBe("Not found\n");
  });

  it("keep the status of a request refused before any route (a body over its limit)", async () => {
    const r = await fetch(`${base}/tiny-form`, { method: "POST", body: "x=" + "y".repeat(10_000), headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "text/html", "Accept-Language": "en" } });
    expect(r.status).toBe(413);
    expect(await r.text()).toContain("could not be read");
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
