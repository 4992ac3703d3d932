/**
 * Drops repeated edge lines on their way to COPY, for files grouped by
 * follower (as database exports and crawls are): within one follower's run
 * of lines, a line byte-identical to an earlier one is left out. When the
 * file holds no other duplicates, the bulk import's unique index then
 * builds at the first attempt, instead of after a deduplicating pass over
 * every row (measured at 47M edges: that pass costs more than a minute).
 *
 * It only ever drops exact repeats, so it never changes what is imported:
 * anything it lets through (a follower's lines split in two runs, quoted
 * fields, a run past the memory cap) is still deduplicated by PostgreSQL.
 * Dropped lines are remembered so that COPY's line numbers can be turned
 * back into the file's.
 */
import { Transform, type TransformCallback } from "node:stream";

const NEWLINE = 0x0a;
const COMMA = 0x2c;
const QUOTE = 0x22;
const MAX_LINE = 64 * 1024;

export interface GroupDedupeLimits {
  /** Distinct lines remembered for one follower; past it, the run goes through as is. */
  maxGroup?: number;
  /** Lines dropped in all; past it, the rest of the file goes through as is. */
  maxDropped?: number;
}

export class GroupDedupe extends Transform {
  /** Body line numbers (1 = first line after the header) of the lines left out, ascending. */
  readonly dropped: number[] = [];
  private readonly maxGroup: number;
  private readonly maxDropped: number;
  private carry: Buffer = Buffer.alloc(0);
  private follower: Buffer = Buffer.alloc(0);
  private seen = new Set<string>();
  private line = 0;
  /** Off for good once the file shows a quote: CSV quoting makes lines and rows differ. */
  private active = true;

  constructor(limits: GroupDedupeLimits = {}) {
    super();
    this.maxGroup = limits.maxGroup ?? 1_000_000;
    this.maxDropped = limits.maxDropped ?? 5_000_000;
  }

  override _transform(input: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.active || input.indexOf(QUOTE) !== -1 || this.dropped.length >= this.maxDropped) {
      this.passThrough(input);
      callback();
      return;
    }
    const chunk = this.carry.length ? Buffer.concat([this.carry, input]) : input;
    let start = 0;
    let keepFrom = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      this.line++;
      if (this.isRepeat(chunk, start, nl)) {
        this.dropped.push(this.line);
        if (start > keepFrom) this.push(chunk.subarray(keepFrom, start));
        keepFrom = nl + 1;
      }
      start = nl + 1;
    }
    if (start > keepFrom) this.push(chunk.subarray(keepFrom, start));
    // A partial last line waits for the rest of it (copied: `input` is not ours
    // to keep). No edge line is that long: past the cap this is not a file of
    // lines (CR-only breaks, one huge line) and it goes through as is.
    this.carry = Buffer.from(chunk.subarray(start));
    if (this.carry.length > MAX_LINE) this.passThrough(Buffer.alloc(0));
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.carry.length) this.push(this.carry);
    this.carry = Buffer.alloc(0);
    callback();
  }

  /** Whether line [start, end) repeats an earlier line of the same follower's run (and remembers it if not). */
  private isRepeat(chunk: Buffer, start: number, end: number): boolean {
    const comma = chunk.indexOf(COMMA, start);
    if (comma === -1 || comma > end) return false;
    const sameFollower =
      comma - start === this.follower.length && chunk.compare(this.follower, 0, this.follower.length, start, comma) === 0;
    if (!sameFollower) {
      this.follower = Buffer.from(chunk.subarray(start, comma));
      this.seen = new Set();
    }
    const rest = chunk.toString("latin1", comma + 1, end);
    if (this.seen.has(rest)) return this.dropped.length < this.maxDropped;
    if (this.seen.size < this.maxGroup) this.seen.add(rest);
    return false;
  }

  /** Stops filtering: whatever is pending, and everything after, goes through untouched. */
  private passThrough(input: Buffer): void {
    this.active = false;
    if (this.carry.length) {
      this.push(this.carry);
      this.carry = Buffer.alloc(0);
    }
    this.push(input);
  }

  /** The file's body line number for COPY's `copyLine` (both 1-based, header excluded). */
  fileLine(copyLine: number): number {
    // copyLine + (dropped lines at or before the answer), found by fixed point.
    let line = copyLine;
    for (;;) {
      const next = copyLine + countAtOrBelow(this.dropped, line);
      if (next === line) return line;
      line = next;
    }
  }
}

function countAtOrBelow(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
