/**
 * Works around a crash of the local PDS under Node 24.21: its `node::ObjectWrap`
 * removes an environment cleanup hook in its destructor, which aborts the
 * process ("Assertion failed: (env) != nullptr") when V8 collects a
 * better-sqlite3 database or statement outside any context. The PDS opens
 * an SQLite actor store per request, so a few thousand writes (a benchmark, a
 * long test) reliably get one collected. Keeping every native database and
 * statement reachable stops them from being collected at all; closed ones
 * are small, and the process is a test or benchmark that ends soon.
 * Import before @atproto/dev-env starts the PDS.
 */
import { createRequire } from "node:module";

const marker = Symbol.for("reconnexion.sqliteKeepAlive");
const kept: unknown[] = [];

type Method = (this: object, ...args: unknown[]) => unknown;

function retain(proto: Record<string, unknown>, name: string, keepResult: boolean): void {
  const original = proto[name] as Method | undefined;
  if (typeof original !== "function") return;
  proto[name] = function (this: object, ...args: unknown[]) {
    kept.push(this);
    const result = original.apply(this, args);
    if (keepResult) kept.push(result);
    return result;
  };
}

/** Keeps better-sqlite3's native objects from ever being garbage-collected in this process. */
export function keepSqliteObjectsAlive(): void {
  const g = globalThis as { [marker]?: boolean };
  if (g[marker]) return;
  g[marker] = true;
  let Database: new (file: string) => object & { prepare(sql: string): object; close(): void };
  try {
    Database = createRequire(import.meta.url)("better-sqlite3");
  } catch {
    return; // no SQLite here: nothing to protect
  }
  const probe = new Database(":memory:");
  const symbol = Object.getOwnPropertySymbols(probe).find((s) => typeof (probe as Record<symbol, unknown>)[s] === "object");
  const native = symbol ? ((probe as Record<symbol, unknown>)[symbol] as object) : undefined;
  const statement = probe.prepare("select 1");
  if (native) {
    const proto = Object.getPrototypeOf(native) as Record<string, unknown>;
    retain(proto, "prepare", true);
    retain(proto, "close", false);
  }
  retain(Object.getPrototypeOf(statement) as Record<string, unknown>, "iterate", true);
  kept.push(probe, statement);
  probe.close();
}
