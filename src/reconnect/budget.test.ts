/**
 * The shared write budget on a real PostgreSQL: sliding windows, partial
 * grants, refunds, the server's own figures, and reservers in separate
 * connection pools (as separate worker processes) never overspending.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type Sql } from "../store/database.ts";
import { WriteBudgets } from "../store/write-budget.ts";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { BLUESKY_WRITE_LIMITS, BlueskyWriteBudget } from "./budget.ts";

let db: TestDatabase;
let other: Sql;
let n = 0;
const account = () => `did:plc:budget${++n}`;
/** 30 points (10 creates) per window, no day limit to speak of. */
const tiny = (windowMs: number) => ({ hourPoints: 30, hourMs: windowMs, dayPoints: 1_000_000, dayMs: 86_400_000, slackMs: 0 });

beforeAll(async () => {
  db = await createTestDatabase();
  other = connect(db.url, { max: 4 });
});

afterAll(async () => {
  await other?.end({ timeout: 5 });
  await db?.drop();
});

describe("BlueskyWriteBudget", () => {
  it("defaults to Bluesky's limits: 5,000 points an hour, 35,000 a day, 3 a create", async () => {
    const budget = new BlueskyWriteBudget(new WriteBudgets(db.sql));
    expect(budget.limits).toMatchObject({ hourPoints: 5000, dayPoints: 35000, createCost: 3 });
    const did = account();
    expect((await budget.reserve(did, 2000)).granted).toBe(1666);
    const refused = await budget.reserve(did, 1);
    expect(refused.granted).toBe(0);
    // Free again once the grant leaves the hour (plus the slack).
    const retryAt = "retryAt" in refused ? refused.retryAt.getTime() : 0;
    expect(retryAt - Date.now()).toBeGreaterThan(BLUESKY_WRITE_LIMITS.hourMs);
    expect(retryAt - Date.now()).toBeLessThanOrEqual(BLUESKY_WRITE_LIMITS.hourMs + BLUESKY_WRITE_LIMITS.slackMs);
  });

  it("grants what fits, then names the time the oldest grant leaves the window", async () => {
    const budget = new BlueskyWriteBudget(new WriteBudgets(db.sql), tiny(60_000));
    const did = account();
    const before = Date.now();
    expect((await budget.reserve(did, 4)).granted).toBe(4);
    expect((await budget.reserve(did, 10)).granted).toBe(6);
    const refused = await budget.reserve(did, 1);
    expect(refused).toMatchObject({ granted: 0 });
    const at = "retryAt" in refused ? refused.retryAt.getTime() : 0;
    expect(at).toBeGreaterThanOrEqual(before + 60_000 - 50);
    expect(at).toBeLessThanOrEqual(Date.now() + 60_000);
  });

  it("slides: points come back as their grants leave the window", async () => {
    const budget = new BlueskyWriteBudget(new WriteBudgets(db.sql), tiny(2000));
    const did = account();
    expect((await budget.reserve(did, 6)).granted).toBe(6);
    await new Promise((r) => setTimeout(r, 500));
    expect((await budget.reserve(did, 10)).granted).toBe(4);
    const refused = await budget.reserve(did, 10);
    const wait = "retryAt" in refused ? refused.retryAt.getTime() - Date.now() : -1;
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(1510);
    await new Promise((r) => setTimeout(r, wait + 5));
    // Only the first grant (6 creates) has left: the second still counts.
    expect((await budget.reserve(did, 10)).granted).toBe(6);
  });

  it("holds the day limit as well as the hour", async () => {
    const budget = new BlueskyWriteBudget(new WriteBudgets(db.sql), { hourPoints: 30, hourMs: 200, dayPoints: 45, dayMs: 60_000, slackMs: 0 });
    const did = account();
    expect((await budget.reserve(did, 10)).granted).toBe(10);
    await new Promise((r) => setTimeout(r, 250));
    expect((await budget.reserve(did, 10)).granted).toBe(5);
    const refused = await budget.reserve(did, 1);
    expect("retryAt" in refused && refused.retryAt.getTime() - Date.now()).toBeGreaterThan(59_000);
  });

  it("takes refunds back off the grant they came from", async () => {
    const budget = new BlueskyWriteBudget(new WriteBudgets(db.sql), tiny(60_000));
    const did = account();
    const grant = await budget.reserve(did, 10);
    await budget.refund(did, 3, "reservation" in grant ? grant.reservation : undefined);
    expect((await budget.reserve(did, 10)).granted).toBe(3);
    await budget.refund(did, 2);
    expect((await budget.reserve(did, 10)).granted).toBe(2);
  });

  it("honours the server's figures until their reset, and only a tighter one replaces them", async () => {
    const budget = new BlueskyWriteBudget(new WriteBudgets(db.sql));
    const did = account();
    const resetAt = new Date(Date.now() + 120_000);
    await budget.noteServerLimit(did, { remaining: 10, resetAt });
    expect((await budget.reserve(did, 100)).granted).toBe(3); // 9 of the 10 points
    await budget.noteServerLimit(did, { remaining: 500, resetAt }); // a late answer from before: ignored
    expect(await budget.reserve(did, 1)).toEqual({ granted: 0, retryAt: resetAt });
    const sooner = new Date(Date.now() + 30_000);
    await budget.noteServerLimit(did, { remaining: 0, resetAt: sooner }); // a 429 with its reset
    expect(await budget.reserve(did, 1)).toEqual({ granted: 0, retryAt: sooner });

    const past = account();
    await budget.noteServerLimit(past, { remaining: 0, resetAt: new Date(Date.now() - 1000) });
    expect((await budget.reserve(past, 5)).granted).toBe(5);
  });

  it("never overspends between concurrent reservers in separate pools", async () => {
    const did = account();
    const budgets = [new BlueskyWriteBudget(new WriteBudgets(db.sql), tiny(60_000)), new BlueskyWriteBudget(new WriteBudgets(other), tiny(60_000))];
    const grants = await Promise.all(Array.from({ length: 24 }, (_, i) => budgets[i % 2]!.reserve(did, 1 + (i % 3))));
    const granted = grants.reduce((sum, g) => sum + g.granted, 0);
    expect(granted).toBe(10);
    const [row] = await db.sql<{ points: number }[]>`select sum(points)::int as points from write_budget_use where account = ${did}`;
    expect(row!.points).toBe(30);
  });
});
