import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { EdgeFieldError, GroupDedupe, type GroupDedupeLimits } from "./group-dedupe.ts";

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

describe("GroupDedupe checking that ids are plain decimal digits", () => {
  /** The error a checking GroupDedupe ends with, for `text` cut into chunks of `size`. */
  async function refusal(text: string, size: number): Promise<unknown> {
    return run(text, size, { checkDigits: true }).then(() => undefined, (e: unknown) => e);
  }

  it("refuses any byte but digits, comma, CR, LF and the quote, naming the line, column and field, however the chunks fall", async () => {
    const cases: [string, { line: number; column: number; field: string }][] = [
      ["1,2\n0x10,5\n", { line: 2, column: 0, field: "0x10" }],
      ["10,2\n10,3\n1o,4\n", { line: 3, column: 0, field: "1o" }], // a follower checked once per run: this is a new one
      ["1,2\n1,3\nab\n", { line: 3, column: 0, field: "ab" }], // no comma
      ["1,2\r\n3,1_000\r\n", { line: 2, column: 1, field: "1_000" }],
      ["1,2\n3,0o17\n", { line: 2, column: 1, field: "0o17" }],
      ["1,2\n1,2\n1,0b101\n", { line: 3, column: 1, field: "0b101" }],
      ["1,2\n3, 4\n", { line: 2, column: 1, field: " 4" }],
      ["1,2\n3,+4\n", { line: 2, column: 1, field: "+4" }],
      ["1,2\n-3,4\n", { line: 2, column: 0, field: "-3" }],
      ["1,2\n3,4,x\n", { line: 2, column: 2, field: "x" }],
      ["1,2\n3,4e5", { line: 2, column: 1, field: "4e5" }], // a last line without a break
      [`${"7".repeat(70)},1\n${"7".repeat(70)},1x\n`, { line: 2, column: 1, field: "1x" }], // past the remembered follower length
      [`1,${"9".repeat(25)}\n1,${"9".repeat(25)}z\n`, { line: 2, column: 1, field: `${"9".repeat(25)}z` }], // past the remembered digits
      ['"1","2"\n"0x10",3\n', { line: 2, column: 0, field: "0x10" }], // quoted: checked all the same
      ['1,2\n"3","4"\n5,6\n7,1_0\n', { line: 4, column: 1, field: "1_0" }],
    ];
    for (const [text, expected] of cases) {
      for (const size of [1, 3, 7, 4096]) {
        const error = await refusal(text, size);
        expect([text, size, error]).toEqual([text, size, expect.any(EdgeFieldError)]);
        const { line, column, field } = error as EdgeFieldError;
        expect([text, size, { line, column, field }]).toEqual([text, size, expected]);
      }
    }
  });

  it("counts the lines it left out, and checks a line that never ends (CR-only breaks) all the same", async () => {
    expect(await refusal("1,2\n1,2\n1,2\n1,x\n", 64)).toMatchObject({ line: 4, field: "x" });
    const crOnly = "1,2\r".repeat(20_000) + "1,y\r";
    expect(await refusal(crOnly, 4096)).toMatchObject({ field: "y" });
  });

  it("lets decimal ids through unchanged, quoted or not", async () => {
    for (const text of ["1,2\n1,2\n3,4\r\n5,6", '"1","2"\n"3",4\n5,6\n', "12345678901234567890123,1\n"]) {
      const plain = await run(text, 5);
      const checked = await run(text, 5, { checkDigits: true });
      expect(checked.out).toBe(plain.out);
    }
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
