/** Turning PostgreSQL COPY errors into one sentence naming file and line. */
import { ImportError } from "./types.ts";

interface PgError {
  code?: string;
  message?: string;
  where?: string;
  detail?: string;
  column_name?: string;
}

/**
 * `fileLine`: the file's line number for COPY's line number (lines before
 * the first one COPY saw, such as the header, and lines filtered out on the
 * way). Returns undefined for errors that are not about the input.
 */
export function translateCopyError(
  error: unknown,
  file: string,
  fileLine: (copyLine: number) => number,
  columnNames: Record<string, string> = {},
): ImportError | undefined {
  const e = error as PgError;
  if (!e || typeof e !== "object" || typeof e.code !== "string") return undefined;
  // Class 22: data exceptions; 23: integrity (our check constraints).
  if (!e.code.startsWith("22") && !e.code.startsWith("23")) return undefined;
  const where = /line (\d+)(?:, column (\w+))?(?:: "(.*)")?/.exec(e.where ?? "");
  const line = where ? fileLine(Number(where[1])) : undefined;
  const column = where?.[2] && (columnNames[where[2]] ?? where[2]);
  const value = where?.[3];
  let message: string;
  if (e.code === "22P02" || e.code === "22003") {
    message = `${column ? `${column} ` : ""}must be a positive whole number (an X account id), not "${truncate(value ?? "")}".`;
  } else if (e.code === "23514") {
    message = "X account ids must be positive numbers.";
  } else if (e.code === "23502") {
    message = `${(e.column_name && columnNames[e.column_name]) ?? e.column_name ?? "a column"} is empty.`;
  } else if (/missing data for column/.test(e.message ?? "")) {
    message = `a column is missing (${e.message}).`;
  } else if (/extra data after last expected column/.test(e.message ?? "")) {
    message = "the row has more columns than the header.";
  } else if (/unterminated CSV quoted field/.test(e.message ?? "")) {
    message = "a quoted field is never closed.";
  } else if (e.code === "22021") {
    message = "the file is not valid UTF-8 text.";
  } else {
    message = e.message ?? "the row is invalid.";
  }
  return new ImportError(file, line, message);
}

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}
