/**
 * Streaming reader for the data files of an X archive. Each is a JavaScript
 * file of the form
 *
 *     window.YTD.following.part0 = [ { "following" : { "accountId" : "…", … } }, … ]
 *
 * The scanner finds each top-level array element (tracking strings and
 * nesting) and hands it to `JSON.parse`, so memory holds one element at a
 * time whatever the file's size.
 */
import type { ArchiveProblem } from "./problem.ts";

export class YtdFormatError extends Error {
  readonly line: number;
  readonly problem: ArchiveProblem;
  constructor(line: number, message: string, problem: ArchiveProblem = { kind: "bad-content" }) {
    super(message);
    this.line = line;
    this.problem = problem;
  }
}

const PREFIX = /^\s*window\.YTD\.([A-Za-z_][\w]*)\.part(\d+)\s*=\s*\[$/;
const MAX_PREFIX = 256;
const MAX_ELEMENT = 256 * 1024;

const enum_ = { prefix: 0, between: 1, element: 2, done: 3 } as const;

/** Feed text chunks in order; collects parsed elements. */
export class YtdScanner {
  /** The `following` in `window.YTD.following.part0`. */
  section: string | undefined;
  private state: number = enum_.prefix;
  private buffer = "";
  private depth = 0;
  private inString = false;
  private escaped = false;
  private line = 1;
  private elementLine = 1;

  /**
   * Scans `chunk`, returning the elements it completed; `lines`, when given,
   * receives the line each of them starts on (the file's first line is 1).
   */
  feed(chunk: string, lines?: number[]): unknown[] {
    const out: unknown[] = [];
    let start = 0; // where the current element begins in `chunk`, if inside one
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c === 10) this.line++;
      switch (this.state) {
        case enum_.prefix: {
          this.buffer += chunk[i];
          if (c === 91 /* [ */) {
            const match = PREFIX.exec(this.buffer.replace(/^\uFEFF/, ""));
            if (!match) throw new YtdFormatError(1, "does not start like an X archive data file (window.YTD.<name>.part0 = [).");
            this.section = match[1];
            this.buffer = "";
            this.state = enum_.between;
          } else if (this.buffer.length > MAX_PREFIX) {
            throw new YtdFormatError(1, "does not start like an X archive data file (window.YTD.<name>.part0 = [).");
          }
          break;
        }
        case enum_.between: {
          if (c === 123 /* { */) {
            this.state = enum_.element;
            this.depth = 1;
            this.inString = false;
            this.escaped = false;
            this.elementLine = this.line;
            start = i;
          } else if (c === 93 /* ] */) {
            this.state = enum_.done;
          } else if (c !== 44 /* , */ && c !== 32 && c !== 10 && c !== 13 && c !== 9) {
            throw new YtdFormatError(this.line, `has "${chunk[i]}" where an entry ({…}) should start.`);
          }
          break;
        }
        case enum_.element: {
          if (this.inString) {
            if (this.escaped) this.escaped = false;
            else if (c === 92 /* \ */) this.escaped = true;
            else if (c === 34 /* " */) this.inString = false;
          } else if (c === 34) {
            // Most of a file is string contents: jump to the closing quote
            // when it is in this chunk (raw line breaks are not valid JSON
            // in a string, so the line count stays right for valid input).
            const close = closingQuote(chunk, i + 1);
            if (close === -1) this.inString = true;
            else i = close;
          }
          else if (c === 123 || c === 91) this.depth++;
          else if (c === 125 || c === 93) {
            this.depth--;
            if (this.depth === 0) {
              const text = this.buffer + chunk.slice(start, i + 1);
              this.buffer = "";
              this.state = enum_.between;
              try {
                out.push(JSON.parse(text));
                lines?.push(this.elementLine);
              } catch (error) {
                // V8 says where: "… in JSON at position 52 (line 3 column 1)"
                const at = /position (\d+)/.exec(String(error));
                const offset = at ? text.slice(0, Number(at[1])).split("\n").length - 1 : 0;
                throw new YtdFormatError(this.elementLine + offset, "has an entry that is not valid JSON.");
              }
            }
          }
          break;
        }
        case enum_.done: {
          if (c !== 59 /* ; */ && c !== 32 && c !== 10 && c !== 13 && c !== 9) {
            throw new YtdFormatError(this.line, "has text after the end of its list.");
          }
          break;
        }
      }
    }
    if (this.state === enum_.element) {
      this.buffer += chunk.slice(start);
      if (this.buffer.length > MAX_ELEMENT) {
        throw new YtdFormatError(this.elementLine, "has an entry far larger than any X archive entry.");
      }
    }
    return out;
  }

  /** Call at end of input: throws if the file stopped half-way. */
  end(): void {
    if (this.state === enum_.prefix) {
      throw new YtdFormatError(1, "does not start like an X archive data file (window.YTD.<name>.part0 = [).");
    }
    if (this.state !== enum_.done) {
      throw new YtdFormatError(this.line, "ends before its list is closed (the file is truncated).", { kind: "damaged" });
    }
  }
}

/**
 * The index of the quote closing a JSON string whose contents start at
 * `from`, or -1 if it does not close within `text` (or an escape sits at
 * the very end, so the byte-by-byte path must take over).
 */
function closingQuote(text: string, from: number): number {
  for (let q = text.indexOf('"', from); q !== -1; q = text.indexOf('"', q + 1)) {
    let backslashes = 0;
    while (q - 1 - backslashes >= from && text.charCodeAt(q - 1 - backslashes) === 92) backslashes++;
    if (backslashes % 2 === 0) return q;
  }
  return -1;
}

/** Elements completed by one chunk, and the line each starts on. */
export interface YtdBatch {
  elements: unknown[];
  lines: number[];
}

/**
 * Parses `stream` (UTF-8 text), yielding the elements each chunk completes
 * with their lines (one await per chunk rather than per element: archives
 * hold 100,000s).
 * @param section the expected name (`following` in `window.YTD.following.part0`)
 */
export async function* readYtdEntries(stream: AsyncIterable<string | Buffer>, section?: string): AsyncGenerator<YtdBatch> {
  const scanner = new YtdScanner();
  const decoder = new TextDecoder("utf-8", { fatal: false });
  let checked = section === undefined;
  for await (const chunk of stream) {
    const text = typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    const lines: number[] = [];
    const elements = scanner.feed(text, lines);
    if (!checked && scanner.section !== undefined) {
      if (scanner.section !== section) {
        throw new YtdFormatError(1, `holds "${scanner.section}" data where "${section}" was expected.`);
      }
      checked = true;
    }
    if (elements.length) yield { elements, lines };
  }
  const lines: number[] = [];
  const last = scanner.feed(decoder.decode(), lines);
  scanner.end();
  if (last.length) yield { elements: last, lines };
}

/** Parses `stream` (UTF-8 text), yielding the elements each chunk completes. */
export async function* readYtdBatches(stream: AsyncIterable<string | Buffer>, section?: string): AsyncGenerator<unknown[]> {
  for await (const batch of readYtdEntries(stream, section)) yield batch.elements;
}

/** Parses `stream` (UTF-8 text) element by element. */
export async function* readYtd(stream: AsyncIterable<string | Buffer>, section?: string): AsyncGenerator<unknown> {
  for await (const elements of readYtdBatches(stream, section)) yield* elements;
}
