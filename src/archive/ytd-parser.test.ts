import { describe, expect, it } from "vitest";
import { readYtd, readYtdBatches, readYtdEntries, YtdFormatError, YtdScanner } from "./ytd-parser.ts";

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

  it("tells the line each entry starts on, however the text is cut", async () => {
    // JSON.stringify(…, null, 2) puts the first entry on line 2; each entry takes its own lines.
    const expected: number[] = [];
    let line = 2;
    for (const entry of entries) {
      expected.push(line);
      line += JSON.stringify(entry, null, 2).split("\n").length;
    }
    for (const size of [1, 3, 7, 64, file.length]) {
      const bytes = Buffer.from(file);
      async function* chunks() {
        for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
      }
      const elements: unknown[] = [];
      const lines: number[] = [];
      for await (const batch of readYtdEntries(chunks(), "following")) {
        expect(batch.lines).toHaveLength(batch.elements.length);
        elements.push(...batch.elements);
        lines.push(...batch.lines);
      }
      expect(elements, `chunks of ${size}`).toEqual(entries);
      expect(lines, `chunks of ${size}`).toEqual(expected);
    }
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
