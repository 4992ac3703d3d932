#!/usr/bin/env node
// The `reconnexion` command once linked or installed from a checkout
// (`npm link`, or the Docker image). Node >= 24 runs the TypeScript sources
// directly (type stripping), so there is no build step. On an older system
// Node, the checkout's pinned Node (a dev dependency) runs it instead.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

if (Number(process.versions.node.split(".")[0]) >= 24) {
  await import("../src/cli.ts");
} else {
  const pinned = fileURLToPath(new URL("../node_modules/.bin/node", import.meta.url));
  if (!existsSync(pinned)) {
    process.stderr.write(`reconnexion: needs Node 24 or later, and this is Node ${process.versions.node} (run \`npm ci\` in the checkout to get the pinned one).\n`);
    process.exit(1);
  }
  const run = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: "inherit" });
  process.exit(run.status ?? 1);
}
