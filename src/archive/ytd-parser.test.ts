import { describe, expect, it } from "vitest";
import { readYtd, readYtdBatches, YtdFormatError, YtdScanner } from "./ytd-parser.ts";

// Strings holding what a scanner must not take for structure: quotes, escapes, braces, brackets.
const entries = [
  { following: { accountId: "1", userLink: "https://twitter.com/intent/user?user_id=1" } },
  { following: { accountId: "2", note: 'say "hi" {not an object} [nor a list]' } },
  { following: { accountId: "3", note: "ends with a backslash \\" } },
  { following: { accountId: "4", note: "\\\"quoted\\\" and \\\\", nested: { deeper: ["}", "{", "\\\\\\\""] } } },
  { following: { accountId: "5", note: "Ça va — 😀" } },
];
const file = `window.YTD.following.part0 = ${JSON.stringify(entries, null, 2)}`;

function scanInChunks(text: string, size: number): unknown[] {
  const scanner = new YtdScanner();
  const out: unknown[] = [];
  for (let i = 0; i < text.length; i += size) out.push(...scanner.feed(text.slice(i, i + size)));
  scanner.end();
  return out;
}

describe("YtdScanner", () => {
  it("finds every entry whole, however the text is cut, escapes and all", () => {
    for (const size of [1, 2, 3, 5, 7, 11, 64, file.length]) expect(scanInChunks(file, size), `chunks of ${size}`).toEqual(entries);
  });

  it("reads batches and single elements from a byte stream, multi-byte characters split across chunks", async () => {
    const bytes = Buffer.from(file);
    async function* chunks() {
      for (let i = 0; i < bytes.length; i += 5) yield bytes.subarray(i, i + 5);
    }
    const batches: unknown[][] = [];
    for await (const batch of readYtdBatches(chunks(), "following")) batches.push(batch);
    expect(batches.flat()).toEqual(entries);
    const single: unknown[] = [];
    for await (const element of readYtd(chunks(), "following")) single.push(element);
    expect(single).toEqual(entries);
  });

  it("names the line of an entry that is not JSON, and of a file cut short", () => {
    const broken = 'window.YTD.following.part0 = [\n{ "a": 1 },\n{ "b": tru }\n]';
    expect(() => scanInChunks(broken, 4)).toThrow(YtdFormatError);
    try {
      scanInChunks(broken, 4);
    } catch (error) {
      expect((error as YtdFormatError).line).toBe(3);
    }
    expect(() => scanInChunks(file.slice(0, file.length - 10), 16)).toThrow(/truncated/);
  });
});
