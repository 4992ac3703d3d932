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
const CR = 0x0d;
const COMMA = 0x2c;
const QUOTE = 0x22;
const ZERO = 0x30;
const MAX_LINE = 64 * 1024;
/** Longer follower fields are never compared (an X id has at most 19 digits). */
const MAX_FOLLOWER = 64;
/** Longest followed field remembered: digits only, up to 20. */
const MAX_DIGITS = 20;

export interface GroupDedupeLimits {
  /** Distinct lines remembered for one follower; past it, the run goes through as is. */
  maxGroup?: number;
  /** Lines dropped in all; past it, the rest of the file goes through as is. */
  maxDropped?: number;
}

export class GroupDedupe extends Transform {
  /** Body line numbers (1 = first line after the header) of the lines left out, ascending. */
  readonly dropped: number[] = [];
  private readonly maxDropped: number;
  private carry: Buffer = Buffer.alloc(0);
  /** The current run's follower field (its first `followerLength` bytes; -1: none to match). */
  private readonly follower = Buffer.alloc(MAX_FOLLOWER);
  private followerLength = -1;
  /** The followed fields seen in the current run, as numbers (no string per line: this runs 47M times). */
  private readonly seen: PairSet;
  /** Line breaks seen so far, filtering or not. */
  private breaks = 0;
  /** Off for good once the file shows a quote: CSV quoting makes lines and rows differ. */
  private active = true;

  constructor(limits: GroupDedupeLimits = {}) {
    super();
    this.seen = new PairSet(limits.maxGroup ?? 1_000_000);
    this.maxDropped = limits.maxDropped ?? 5_000_000;
  }

  /** Line breaks that went through (the body's lines, less a last one without a break). */
  get lineBreaks(): number {
    return this.breaks;
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
      this.breaks++;
      if (this.isRepeat(chunk, start, nl)) {
        this.dropped.push(this.breaks);
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

  /**
   * Whether line [start, end) repeats an earlier line of the same follower's
   * run (and remembers it if not). Only a followed field of digits (and a
   * CR before the break) is remembered: two such fields with the same value,
   * length and ending are the same bytes. Anything else is never a repeat.
   */
  private isRepeat(chunk: Buffer, start: number, end: number): boolean {
    const follower = this.follower;
    const known = this.followerLength;
    let p = start;
    let same = true;
    while (p < end && chunk[p] !== COMMA) {
      if (same && (p - start >= known || follower[p - start] !== chunk[p])) same = false;
      p++;
    }
    if (p === end) return false;
    const length = p - start;
    if (!same || length !== known) {
      this.seen.clear();
      if (length > MAX_FOLLOWER) {
        this.followerLength = -1;
        return false;
      }
      chunk.copy(follower, 0, start, p);
      this.followerLength = length;
    }
    let last = end;
    const cr = last > p + 1 && chunk[last - 1] === CR ? 1 : 0;
    last -= cr;
    const digits = last - (p + 1);
    if (digits === 0 || digits > MAX_DIGITS) return false;
    // All but the last 9 digits in `high` (≤ 11 digits), the last 9 in `low`: both exact.
    const split = last - 9;
    let high = 0;
    let low = 0;
    for (let k = p + 1; k < last; k++) {
      const d = chunk[k]! - ZERO;
      if (d < 0 || d > 9) return false;
      if (k < split) high = high * 10 + d;
      else low = low * 10 + d;
    }
    const repeat = this.seen.addOrHas((high * 32 + digits) * 2 + cr, low);
    return repeat && this.dropped.length < this.maxDropped;
  }

  /** Stops filtering: whatever is pending, and everything after, goes through untouched (line breaks still counted). */
  private passThrough(input: Buffer): void {
    this.active = false;
    if (this.carry.length) {
      this.push(this.carry);
      this.carry = Buffer.alloc(0);
    }
    for (let i = input.indexOf(NEWLINE); i !== -1; i = input.indexOf(NEWLINE, i + 1)) this.breaks++;
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

/**
 * A set of pairs of whole numbers (each below 2^53), open addressing with
 * linear probing; `clear` is O(1) (a generation stamp), so starting a new
 * follower's run costs nothing. Holds at most `max` pairs.
 */
class PairSet {
  private first = new Float64Array(1024);
  private second = new Float64Array(1024);
  private stamp = new Uint32Array(1024);
  private generation = 1;
  private size = 0;
  private readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  clear(): void {
    this.size = 0;
    if (++this.generation === 0xffffffff) {
      this.stamp.fill(0);
      this.generation = 1;
    }
  }

  /** True if (a, b) is in the set; else adds it (while there is room) and answers false. */
  addOrHas(a: number, b: number): boolean {
    const mask = this.stamp.length - 1;
    let slot = hash(a, b) & mask;
    while (this.stamp[slot] === this.generation) {
      if (this.first[slot] === a && this.second[slot] === b) return true;
      slot = (slot + 1) & mask;
    }
    if (this.size >= this.max) return false;
    this.stamp[slot] = this.generation;
    this.first[slot] = a;
    this.second[slot] = b;
    if (++this.size * 2 > this.stamp.length) this.grow();
    return false;
  }

  private grow(): void {
    const { first, second, stamp, generation } = this;
    const capacity = stamp.length * 2;
    this.first = new Float64Array(capacity);
    this.second = new Float64Array(capacity);
    this.stamp = new Uint32Array(capacity);
    this.generation = 1;
    const mask = capacity - 1;
    for (let i = 0; i < stamp.length; i++) {
      if (stamp[i] !== generation) continue;
      let slot = hash(first[i]!, second[i]!) & mask;
      while (this.stamp[slot] === 1) slot = (slot + 1) & mask;
      this.stamp[slot] = 1;
      this.first[slot] = first[i]!;
      this.second[slot] = second[i]!;
    }
  }
}

function hash(a: number, b: number): number {
  let h = Math.imul((a >>> 0) ^ Math.floor(a / 4294967296), 0x9e3779b1) ^ Math.imul(b >>> 0, 0x85ebca77);
  h ^= h >>> 15;
  return Math.imul(h, 0x2c1b3c6d) ^ (h >>> 13);
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
