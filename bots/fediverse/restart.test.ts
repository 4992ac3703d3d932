/**
 * A restart between receipt and reply loses nothing and doubles nothing:
 * the inbound activity waits in PostgreSQL until a worker handles it, and a
 * queued reply is delivered by the next process.
 */
import { createExponentialBackoffPolicy, exportJwk } from "@fedify/fedify";
import { Service } from "@fedify/vocab";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { startFediServer, type FediServer } from "../../test/harness/fediverse.ts";
import { freePort, startBot } from "../../test/harness/fediverse-bot.ts";
import { createNote } from "../../test/harness/fediverse-shapes.ts";
import { until } from "../../test/harness/wait.ts";
import { connect } from "../../src/store/database.ts";

let db: TestDatabase;
let server: FediServer;
let port: number;

beforeAll(async () => {
  db = await createTestDatabase();
  port = await freePort();
  server = await startFediServer({ users: [{ name: "alice" }, { name: "bob" }, { name: "carol" }, { name: "dan" }, { name: "erin" }] });
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

type Jwk = { kty?: string; crv?: string; n?: string; e?: string; x?: string };
const publicPart = (k: Jwk) => (k.kty === "RSA" ? { kty: k.kty, n: k.n, e: k.e } : { kty: k.kty, crv: k.crv, x: k.x });

/**
 * The actor's public keys as it serves them, read as a fediverse server
 * reads them: its `publicKey` (RSA, HTTP Signatures) and its
 * `assertionMethod` Multikeys (RSA, Ed25519), each as a JWK.
 */
async function servedKeys(actorId: string) {
  const res = await fetch(actorId, { headers: { Accept: "application/activity+json" } });
  expect(res.status).toBe(200);
  const json = (await res.json()) as Record<string, unknown>;
  const actor = await Service.fromJsonLd(json);
  const key = await actor.getPublicKey();
  expect(key?.ownerId?.href).toBe(actorId);
  const multikeys = [];
  for await (const m of actor.getAssertionMethods()) {
    expect(m.controllerId?.href).toBe(actorId);
    multikeys.push(publicPart((await exportJwk(m.publicKey!)) as Jwk));
  }
  return { raw: { publicKey: json.publicKey, assertionMethod: json.assertionMethod }, publicKey: publicPart((await exportJwk(key!.publicKey!)) as Jwk), multikeys };
}

const storedKeys = async () =>
  (await db.sql<{ algorithm: string; public_jwk: Jwk }[]>`select algorithm, public_jwk from fediverse_key order by algorithm`).map((r) => ({
    algorithm: r.algorithm,
    key: publicPart(r.public_jwk),
  }));

it("serves the same key pairs after a restart, the ones kept in the database", async () => {
  const first = await startBot(db, port, { workers: false });
  let before: Awaited<ReturnType<typeof servedKeys>>;
  try {
    before = await servedKeys(first.actorId);
  } finally {
    await first.stop();
  }
  const stored = await storedKeys();
  expect(stored.map((s) => s.algorithm)).toEqual(["Ed25519", "RSASSA-PKCS1-v1_5"]);
  const [ed25519, rsa] = stored.map((s) => s.key);
  expect(ed25519).toMatchObject({ kty: "OKP", crv: "Ed25519", x: expect.any(String) });
  expect(rsa).toMatchObject({ kty: "RSA", n: expect.any(String) });
  // Served: the stored RSA key for HTTP Signatures, and both as Multikeys (RSA first).
  expect(before.publicKey).toEqual(rsa);
  expect(before.multikeys).toEqual([rsa, ed25519]);

  // A new process object on the same database: nothing kept in memory.
  const second = await startBot(db, port, { workers: false });
  try {
    expect(second.bot).not.toBe(first.bot);
    const after = await servedKeys(second.actorId);
    expect(after).toEqual(before);
  } finally {
    await second.stop();
  }
  expect(await storedKeys()).toEqual(stored);
});

it("answers, after a restart, a message received before it", async () => {
  const alice = server.user("alice");
  const first = await startBot(db, port, { workers: false });
  const ref = { actorId: first.actorId, acct: `reconnexion@127.0.0.1:${port}` };
  const res = await alice.post(first.inbox, createNote("mastodon", alice, ref, "help"));
  expect(res.status).toBe(202);
  await first.stop();
  expect(alice.notes).toHaveLength(0);

  const second = await startBot(db, port);
  try {
    const notes = await alice.waitForNotes(1);
    const total = notes[0]!.content.match(/\((\d+)\/(\d+)\)<\/p>$/)?.[2];
    await alice.waitForNotes(Number(total ?? 1));
    await second.drained();
    expect(alice.notes).toHaveLength(Number(total ?? 1));
  } finally {
    await second.stop();
  }
});

it("delivers, after a restart, a reply queued before it", async () => {
  const bob = server.user("bob");
  const first = await startBot(db, port, { workers: "inbox" });
  const ref = { actorId: first.actorId, acct: `reconnexion@127.0.0.1:${port}` };
  expect((await bob.post(first.inbox, createNote("mastodon", bob, ref, "help"))).status).toBe(202);
  await until("the inbox queue to be worked through", async () => (await first.bot.queues.inbox.depth()) === 0, 30_000, 50);
  const queued = (await first.bot.queues.outbox.depth()) + (await first.bot.queues.fanout.depth());
  expect(queued).toBeGreaterThan(0);
  await first.stop();
  expect(bob.notes).toHaveLength(0);

  const second = await startBot(db, port);
  try {
    await bob.waitForNotes(queued);
    await second.drained();
    expect(bob.notes).toHaveLength(queued);
    expect(new Set(bob.notes.map((n) => n.id)).size).toBe(queued);
  } finally {
    await second.stop();
  }
});

/** A claim on `noteId` as a worker that died would have left it. */
async function deadClaim(noteId: string, actor: string, options: { ageSeconds: number; replies?: string[] }) {
  await db.sql`
    insert into fediverse_inbound (note_id, actor_uri, claimed_at, replies)
    values (${noteId}, ${actor}, now() - ${options.ageSeconds} * interval '1 second',
            ${options.replies ? db.sql.json(options.replies) : null})`;
}

it("answers a note claimed by a worker that died before answering", async () => {
  const carol = server.user("carol");
  const bot = await startBot(db, port);
  try {
    const noteId = carol.noteId();
    await deadClaim(noteId, carol.actorId, { ageSeconds: 3600 });
    const ref = { actorId: bot.actorId, acct: `reconnexion@127.0.0.1:${port}` };
    expect((await carol.post(bot.inbox, createNote("mastodon", carol, ref, "help", { noteId }))).status).toBe(202);
    const [note] = await carol.waitForNotes(1);
    expect(note!.inReplyTo).toBe(noteId);
    const [row] = await db.sql<{ answered: boolean }[]>`select answered_at is not null as answered from fediverse_inbound where note_id = ${noteId}`;
    expect(row!.answered).toBe(true);
  } finally {
    await bot.stop();
  }
});

it("sends the replies a dead worker saved, without running the message again", async () => {
  const dan = server.user("dan");
  const bot = await startBot(db, port);
  try {
    const noteId = dan.noteId();
    await deadClaim(noteId, dan.actorId, { ageSeconds: 3600, replies: ["The answer saved before the crash."] });
    const ref = { actorId: bot.actorId, acct: `reconnexion@127.0.0.1:${port}` };
    expect((await dan.post(bot.inbox, createNote("mastodon", dan, ref, "help", { noteId }))).status).toBe(202);
    await dan.waitForNotes(1);
    await bot.drained();
    expect(dan.notes).toHaveLength(1);
    expect(dan.notes[0]!.content).toContain("The answer saved before the crash.");
  } finally {
    await bot.stop();
  }
});

it("waits while another worker's claim is fresh, then takes it over when its lease ends", async () => {
  const erin = server.user("erin");
  const bot = await startBot(db, port, { claimLeaseSeconds: 3 });
  try {
    const noteId = erin.noteId();
    await deadClaim(noteId, erin.actorId, { ageSeconds: 0 });
    const ref = { actorId: bot.actorId, acct: `reconnexion@127.0.0.1:${port}` };
    expect((await erin.post(bot.inbox, createNote("mastodon", erin, ref, "help", { noteId }))).status).toBe(202);
    // Tried, found held, and put back for later (a retry waiting in the inbox queue): nothing sent meanwhile.
    await until("the message to be put back for later", async () => {
      const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from fediverse_queue where queue = 'inbox' and run_at > now()`;
      return row!.n > 0;
    }, 10_000, 50);
    expect(await bot.bot.queues.outbox.depth()).toBe(0);
    expect(erin.notes).toHaveLength(0);
    const notes = await erin.waitForNotes(1, 30_000);
    const total = Number(notes[0]!.content.match(/\((\d+)\/(\d+)\)<\/p>$/)?.[2] ?? 1);
    await erin.waitForNotes(total, 10_000);
    await bot.drained();
    expect(erin.notes).toHaveLength(total);
  } finally {
    await bot.stop();
  }
});

it("sends the replies once when the worker fails right after queueing them, before marking the note answered", async () => {
  const carol = server.user("carol");
  // The first "answered" mark fails, as if the process died right there.
  await db.sql.unsafe(`
    create sequence answered_marks;
    create function fail_first_answer() returns trigger language plpgsql as $$
    begin
      if new.answered_at is not null and old.answered_at is null and nextval('answered_marks') = 1 then
        raise exception 'crash before the note is marked answered';
      end if;
      return new;
    end $$;
    create trigger fail_first_answer before update on fediverse_inbound for each row execute function fail_first_answer();`);
  const bot = await startBot(db, port, { claimLeaseSeconds: 2 });
  try {
    const ref = { actorId: bot.actorId, acct: `reconnexion@127.0.0.1:${port}` };
    const noteId = carol.noteId();
    const before = carol.notes.length;
    expect((await carol.post(bot.inbox, createNote("mastodon", carol, ref, "status", { noteId }))).status).toBe(202);
    await until("the note to be answered", async () => {
      const [row] = await db.sql<{ answered: boolean }[]>`select answered_at is not null as answered from fediverse_inbound where note_id = ${noteId}`;
      return row?.answered === true;
    }, 60_000, 100);
    await carol.waitForNotes(before + 1, 30_000);
    // The failed first try's delivery and the retry's both done, if there were two.
    await bot.drained(60_000);
    expect(carol.notes.filter((n) => n.inReplyTo === noteId)).toHaveLength(1);
  } finally {
    await bot.stop();
    await db.sql.unsafe("drop trigger fail_first_answer on fediverse_inbound; drop function fail_first_answer(); drop sequence answered_marks;");
  }
});

it("tells the sender, in their language, that a message failing every try could not be answered, then answers the next one", async () => {
  const bob = server.user("bob");
  const noteId = bob.noteId();
  // A value PostgreSQL refuses, for this one note: keeping its replies fails at every try.
  await db.sql.unsafe(`
    create function refuse_note() returns trigger language plpgsql as $$
    begin
      if new.note_id = '${noteId}' and new.replies is not null then
        raise exception 'value refused' using errcode = '22023';
      end if;
      return new;
    end $$;
    create trigger refuse_note before update on fediverse_inbound for each row execute function refuse_note();`);
  const bot = await startBot(db, port, { inboxRetryPolicy: createExponentialBackoffPolicy({ initialDelay: { milliseconds: 100 }, factor: 1, jitter: false }) });
  try {
    const ref = { actorId: bot.actorId, acct: `reconnexion@127.0.0.1:${port}` };
    const before = bob.notes.length;
    expect((await bob.post(bot.inbox, createNote("mastodon", bob, ref, "aide", { noteId }))).status).toBe(202);
    await bob.waitForNotes(before + 1, 30_000);
    const said = bob.notes.slice(before);
    expect(said).toHaveLength(1);
    expect(said[0]!.inReplyTo).toBe(noteId);
    expect(said[0]!.content).toContain("Désolé, je n’ai pas pu répondre à ce message");
    const [row] = await db.sql<{ failures: number; answered: boolean }[]>`
      select failures, answered_at is not null as answered from fediverse_inbound where note_id = ${noteId}`;
    expect(row).toEqual({ failures: 5, answered: true });
    // Closed: nothing more comes of it, and the next message is answered as usual.
    const next = bob.noteId();
    expect((await bob.post(bot.inbox, createNote("mastodon", bob, ref, "help", { noteId: next }))).status).toBe(202);
    const answers = await bob.waitForNotes(before + 2, 30_000);
    await bot.drained();
    expect(bob.notes.filter((n) => n.inReplyTo === noteId)).toHaveLength(1);
    expect(answers.some((n) => n.inReplyTo === next)).toBe(true);
  } finally {
    await bot.stop();
    await db.sql.unsafe("drop trigger refuse_note on fediverse_inbound; drop function refuse_note();");
  }
});

/** Holds `conversation_sender` locked for `ms` (the engine waits on it, as on a bulk import): resolves when released. */
async function holdEngine(ms: number): Promise<() => Promise<void>> {
  const locker = connect(db.url, { max: 1 });
  let locked!: () => void;
  const taken = new Promise<void>((r) => (locked = r));
  const holding = locker.begin(async (tx) => {
    await tx`lock table conversation_sender in access exclusive mode`;
    locked();
    await new Promise((r) => setTimeout(r, ms));
  });
  await taken;
  return async () => {
    await holding;
    await locker.end();
  };
}

it("runs a message once when its handling outlasts the inbox queue's lease and the note's claim (both renewed while it runs)", async () => {
  const fay = await server.addUser({ name: "fay" });
  const handled: { noteId: string }[] = [];
  // Scaled down: a queue lease of 1.5 s (5 min in production), a claim lease of 1 s (120 s), the engine held 5 s.
  const bot = await startBot(db, port, { onHandled: (i) => void handled.push(i), queue: { leaseMs: 1500 }, claimLeaseSeconds: 1 });
  try {
    const ref = { actorId: bot.actorId, acct: `reconnexion@127.0.0.1:${port}` };
    // Warm up: the sender's actor and acct cached, so that only the engine waits.
    expect((await fay.post(bot.inbox, createNote("mastodon", fay, ref, "help"))).status).toBe(202);
    await fay.waitForNotes(1);
    await bot.drained();
    const before = fay.notes.length;
    const released = await holdEngine(5000);
    const noteId = fay.noteId();
    expect((await fay.post(bot.inbox, createNote("mastodon", fay, ref, "status", { noteId }))).status).toBe(202);
    await released();
    await until("the note to be handled", () => handled.some((h) => h.noteId === noteId), 30_000, 50);
    await bot.drained();
    expect(handled.filter((h) => h.noteId === noteId)).toHaveLength(1);
    const replies = fay.notes.slice(before);
    expect(replies.length).toBeGreaterThan(0);
    expect(new Set(replies.map((n) => n.inReplyTo))).toEqual(new Set([noteId]));
    // One answer: as many notes as its numbering says.
    const total = Number(replies[0]!.content.match(/\((\d+)\/(\d+)\)<\/p>$/)?.[2] ?? 1);
    expect(replies).toHaveLength(total);
  } finally {
    await bot.stop();
  }
});

it("does not run again a note delivered twice while its first delivery is still being handled, however long that takes (its claim renewed)", async () => {
  const gus = await server.addUser({ name: "gus" });
  const handled: { noteId: string }[] = [];
  const bot = await startBot(db, port, {
    onHandled: (i) => void handled.push(i),
    claimLeaseSeconds: 1,
    inboxRetryPolicy: createExponentialBackoffPolicy({ initialDelay: { milliseconds: 300 }, factor: 1, jitter: false, maxAttempts: 50 }),
  });
  try {
    const ref = { actorId: bot.actorId, acct: `reconnexion@127.0.0.1:${port}` };
    expect((await gus.post(bot.inbox, createNote("mastodon", gus, ref, "help"))).status).toBe(202);
    await gus.waitForNotes(1);
    await bot.drained();
    const before = gus.notes.length;
    const released = await holdEngine(4000);
    const noteId = gus.noteId();
    expect((await gus.post(bot.inbox, createNote("mastodon", gus, ref, "status", { noteId }))).status).toBe(202);
    await until("the note to be claimed", async () => (await db.sql`select 1 from fediverse_inbound where note_id = ${noteId}`).length > 0, 10_000, 20);
    // Past the claim's lease: a claim not renewed would be taken over now.
    await new Promise((r) => setTimeout(r, 1500));
    const again = createNote("mastodon", gus, ref, "status", { noteId, activityId: `${noteId}/again` });
    expect((await gus.post(bot.sharedInbox, again)).status).toBe(202);
    await released();
    await until("the note to be handled", () => handled.some((h) => h.noteId === noteId), 30_000, 50);
    await bot.drained();
    expect(handled.filter((h) => h.noteId === noteId)).toHaveLength(1);
    const replies = gus.notes.slice(before);
    const total = Number(replies[0]!.content.match(/\((\d+)\/(\d+)\)<\/p>$/)?.[2] ?? 1);
    expect(replies).toHaveLength(total);
  } finally {
    await bot.stop();
  }
});
