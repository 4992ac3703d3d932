/** Opening a CSV import file and checking its header row. */
import { open, stat } from "node:fs/promises";
import { ImportError } from "./types.ts";

export interface CsvHeader {
  columns: string[];
  /** Bytes up to and including the header's line break. */
  bodyOffset: number;
  size: number;
}

/**
 * Reads the header row of `file` (UTF-8, optional BOM) and checks that it
 * names exactly `expected`, in order.
 */
export async function readCsvHeader(file: string, expected: readonly string[]): Promise<CsvHeader> {
  let size: number;
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new ImportError(file, undefined, "is not a file.");
    size = info.size;
  } catch (error) {
    if (error instanceof ImportError) throw error;
    throw new ImportError(file, undefined, "cannot be read (no such file, or no permission).");
  }
  const handle = await open(file, "r");
  const head = Buffer.alloc(Math.min(size, 64 * 1024));
  try {
    await handle.read(head, 0, head.length, 0);
  } finally {
    await handle.close();
  }
  if (size === 0) throw new ImportError(file, 1, `is empty; expected the header row "${expected.join(",")}".`);
  const newline = head.indexOf(0x0a);
  if (newline < 0 && head.length < size) {
    throw new ImportError(file, 1, `does not start with a CSV header row ("${expected.join(",")}").`);
  }
  const end = newline < 0 ? head.length : newline + 1;
  let text = head.subarray(0, end).toString("utf8").replace(/^\uFEFF/, "").replace(/\r?\n$/, "");
  if (text.includes("\0") || text.includes("\uFFFD")) {
    throw new ImportError(file, 1, "is not UTF-8 text (is it a CSV file?).");
  }
  text = text.trim();
  const columns = text.split(",").map((c) => c.trim().replace(/^"(.*)"$/, "$1").trim().toLowerCase());
  if (columns.length !== expected.length || columns.some((c, i) => c !== expected[i])) {
    throw new ImportError(
      file,
      1,
      `the header row is "${text.slice(0, 120)}" but must be "${expected.join(",")}".`,
    );
  }
  return { columns, bodyOffset: end, size };
}
