/**
 * The embedded PostgreSQL shared by several processes on one data directory
 * (an import in one terminal, the service in another): whichever leaves last
 * stops it, whoever started it; two starting together on a fresh directory
 * make one cluster.
 */
import { existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startEmbeddedPostgres } from "./embedded.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "embedded-"));
});
afterAll(async () => {
  // Whatever a failed test left running.
  const pidFile = path.join(dir, "postgres", "postmaster.pid");
  if (existsSync(pidFile)) {
    try {
      process.kill(Number((await readFile(pidFile, "utf8")).split("\n")[0]), "SIGINT");
    } catch {}
  }
  await rm(dir, { recursive: true, force: true });
});

const alive = async (url: string) => {
  const probe = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    await probe`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await probe.end({ timeout: 1 });
  }
};

it("is started once by two processes starting together, and stopped by the last to leave", async () => {
  const [first, second] = await Promise.all([startEmbeddedPostgres(dir, { shared: true }), startEmbeddedPostgres(dir, { shared: true })]);
  expect(second.url).toBe(first.url);
  // A third process, still connected, as the service would be.
  const service = await startEmbeddedPostgres(dir, { shared: true });
  const serviceSql = postgres(service.url, { max: 1, onnotice: () => {} });
  await serviceSql`select 1`;

  await first.stop();
  await second.stop();
  expect(await alive(service.url)).toBe(true);

  await serviceSql.end();
  await service.stop();
  expect(await alive(service.url)).toBe(false);
  expect(existsSync(path.join(dir, "postgres", "postmaster.pid"))).toBe(false);
}, 120_000);

it("is stopped by its only process even while that process's own connections are open (an import interrupted)", async () => {
  const only = await startEmbeddedPostgres(dir, { shared: true });
  const pool = postgres(only.url, { max: 2, onnotice: () => {} });
  await pool`select 1`;
  await only.stop();
  expect(await alive(only.url)).toBe(false);
  await pool.end({ timeout: 1 }).catch(() => undefined);
}, 120_000);

it("takes over a start lock its holder left behind (dead, or gone before writing its pid)", async () => {
  const stale = await mkdtemp(path.join(os.tmpdir(), "embedded-stale-"));
  try {
    // A process that has exited: its pid is free.
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" }).stdout;
    await writeFile(path.join(stale, "embedded-postgres.lock"), dead);
    const first = await startEmbeddedPostgres(stale, { shared: true });
    expect(await alive(first.url)).toBe(true);
    await first.stop();
    // An empty lock, a minute old.
    const lock = path.join(stale, "embedded-postgres.lock");
    await writeFile(lock, "");
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    const second = await startEmbeddedPostgres(stale, { shared: true });
    expect(await alive(second.url)).toBe(true);
    await second.stop();
    expect(await alive(second.url)).toBe(false);
    expect(existsSync(lock)).toBe(false);
  } finally {
    await rm(stale, { recursive: true, force: true });
  }
}, 120_000);
