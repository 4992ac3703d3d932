/**
 * Starts one real PostgreSQL for the whole run — the embedded one, unless
 * `DATABASE_URL` points at a server — and hands its URL to every test file,
 * which then creates its own database (see ./database.ts).
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
  const external = process.env.DATABASE_URL;
  if (external) {
    project.provide("adminDatabaseUrl", external);
    return;
  }
  const dir = path.join(os.tmpdir(), `reconnexion-test-${process.pid}`);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const server = await startEmbeddedPostgres(dir);
  project.provide("adminDatabaseUrl", server.url);
  return async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  };
}
