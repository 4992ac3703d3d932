/**
 * Starts one real PostgreSQL for the whole run — the embedded one, unless
 * `DATABASE_URL` points at a server — and hands its URL to every test file,
 * which then creates its own database (see ./database.ts). Temporary files
 * of the run (the tests', and those libraries make, such as each local
 * Bluesky PDS's folders) go under one folder of the run, removed at its end.
 */
import { mkdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "../../src/store/embedded.ts";

declare module "vitest" {
  export interface ProvidedContext {
    adminDatabaseUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const dir = path.join(os.tmpdir(), `reconnexion-test-${process.pid}`);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  // Test workers start after this and take it from the environment.
  const tmp = path.join(dir, "tmp");
  await mkdir(tmp, { recursive: true });
  const previousTmp = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  const cleanUp = async () => {
    if (previousTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previousTmp;
    await rm(dir, { recursive: true, force: true });
  };
  const external = process.env.DATABASE_URL;
  if (external) {
    project.provide("adminDatabaseUrl", external);
    return cleanUp;
  }
  const server = await startEmbeddedPostgres(dir);
  project.provide("adminDatabaseUrl", server.url);
  return async () => {
    await server.stop();
    await cleanUp();
  };
}
