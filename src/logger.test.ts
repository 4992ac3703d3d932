import { describe, expect, it } from "vitest";
import { createLogger } from "./logger.ts";

function capture(): { lines: Record<string, unknown>[]; stream: { write(line: string): void } } {
  const lines: Record<string, unknown>[] = [];
  return { lines, stream: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) } };
}

describe("createLogger", () => {
  it("redacts secrets wherever they sit, and keeps error codes readable", () => {
    const { lines, stream } = capture();
    const log = createLogger("info", stream);
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    log.info({ password: "p", session: { accessToken: "a", refreshToken: "r" }, query: { code: "oauth-code", state: "s" }, code: "c" }, "one");
    log.warn({ err: refused, databaseUrl: "postgres://u:p@h/db" }, "two");
    expect(lines[0]).toMatchObject({ password: "[redacted]", session: { accessToken: "[redacted]", refreshToken: "[redacted]" }, query: { code: "[redacted]", state: "s" }, code: "[redacted]" });
    expect(lines[1]).toMatchObject({ err: { code: "ECONNREFUSED" }, databaseUrl: "[redacted]" });
    expect(JSON.stringify(lines)).not.toMatch(/oauth-code|"a"|"r"|u:p@/);
  });
});
