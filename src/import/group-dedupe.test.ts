import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { GroupDedupe, type GroupDedupeLimits } from "./group-dedupe.ts";

/** Runs `text`, cut into chunks of `size` bytes, through a GroupDedupe. */
async function run(text: string, size = 7, limits?: GroupDedupeLimits): Promise<{ out: string; dedupe: GroupDedupe }> {
  const bytes = Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  const dedupe = new GroupDedupe(limits);
  const parts: Buffer[] = [];
  for await (const part of Readable.from(chunks).pipe(dedupe)) parts.push(part as Buffer);
  return { out: Buffer.concat(parts).toString(), dedupe };
}

describe("GroupDedupe", () => {
  it("drops a line repeated within one follower's run, wherever it stands and however the chunks fall", async () => {
    const input = "1,2\n1,3\n1,2\n1,4\n1,3\n2,2\n2,5\n2,5\n";
    for (const size of [1, 3, 7, 64]) {
      const { out, dedupe } = await run(input, size);
      expect(out).toBe("1,2\n1,3\n1,4\n2,2\n2,5\n");
      expect(dedupe.dropped).toEqual([3, 5, 8]);
    }
  });

  it("keeps repeats across separate runs of a follower (PostgreSQL's unique index catches those)", async () => {
    const { out, dedupe } = await run("1,2\n2,3\n1,2\n");
    expect(out).toBe("1,2\n2,3\n1,2\n");
    expect(dedupe.dropped).toEqual([]);
  });

  it("leaves lines that differ in bytes alone, and a last line without a line break", async () => {
    const { out } = await run("1,2\r\n1,2\n1,02\n1,2");
    expect(out).toBe("1,2\r\n1,2\n1,02\n1,2");
  });

  it("drops CRLF repeats, and keeps fields that are not plain digits or are too long to remember", async () => {
    expect((await run("1,2\r\n1,2\r\n1,2\n")).out).toBe("1,2\r\n1,2\n");
    expect((await run("1,x\n1,x\n1,\n1,\n1,-3\n1,-3\n")).out).toBe("1,x\n1,x\n1,\n1,\n1,-3\n1,-3\n");
    const long = "9".repeat(21);
    expect((await run(`1,${long}\n1,${long}\n`)).out).toBe(`1,${long}\n1,${long}\n`);
    const wide = "7".repeat(65);
    expect((await run(`${wide},1\n${wide},1\n`)).out).toBe(`${wide},1\n${wide},1\n`);
  });

  it("tells 19- and 20-digit ids apart exactly, and remembers a long run", async () => {
    // Same last 9 digits, leading part differing by one; then values past 2^53.
    const ids = ["1234567890123456789", "1234567890223456789", "9223372036854775807", "9223372036854775806", "18446744073709551615"];
    const lines = ids.map((id) => `5,${id}\n`).join("");
    const { out, dedupe } = await run(lines + lines, 64);
    expect(out).toBe(lines);
    expect(dedupe.dropped).toEqual([6, 7, 8, 9, 10]);
    // 5,000 distinct followed (the set grows several times), then all again.
    const run5000 = Array.from({ length: 5_000 }, (_, i) => `8,${1_000_000_000_000_000_000n + BigInt(i) * 7919n}\n`).join("");
    const big = await run(run5000 + run5000, 4096);
    expect(big.out).toBe(run5000);
    expect(big.dedupe.dropped.length).toBe(5_000);
  });

  it("counts line breaks, filtering or passing through", async () => {
    expect((await run("1,2\n1,2\n1,3")).dedupe.lineBreaks).toBe(2);
    expect((await run('"1",2\n1,2\n1,2\n', 4)).dedupe.lineBreaks).toBe(3);
  });

  it("lets a file with quoted fields through untouched", async () => {
    const input = '1,2\n1,2\n"1","2"\n1,2\n';
    // Filtered until the first quote shows, untouched from there on.
    const { out } = await run(input, 8);
    expect(out).toBe('1,2\n"1","2"\n1,2\n');
    const whole = await run(`"1",2\n1,2\n1,2\n`, 64);
    expect(whole.out).toBe(`"1",2\n1,2\n1,2\n`);
  });

  it("stops remembering past its caps", async () => {
    expect((await run("1,2\n1,3\n1,3\n1,2\n", 64, { maxGroup: 1 })).out).toBe("1,2\n1,3\n1,3\n");
    expect((await run("1,2\n1,2\n1,2\n1,2\n", 64, { maxDropped: 1 })).out).toBe("1,2\n1,2\n1,2\n");
  });

  it("maps COPY's line numbers back to the file's", async () => {
    const { dedupe } = await run("1,2\n1,2\n1,2\n1,3\n1,3\n1,4\n");
    expect(dedupe.dropped).toEqual([2, 3, 5]);
    // COPY saw lines 1 (file 1), 2 (file 4) and 3 (file 6).
    expect([1, 2, 3].map((l) => dedupe.fileLine(l))).toEqual([1, 4, 6]);
  });
});

describe("GroupDedupe on text that is not lines", () => {
  it("stops holding back a line that never ends (CR-only breaks) and passes everything through", async () => {
    const crOnly = "1,2\r".repeat(20_000);
    const { out, dedupe } = await run(crOnly, 4096);
    expect(out).toBe(crOnly);
    expect(dedupe.dropped).toEqual([]);
  });
});
