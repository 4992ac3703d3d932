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
 *
 * With `checkDigits`, it also refuses (EdgeFieldError) any byte but digits,
 * comma, CR, LF and the quote: COPY's bigint input would otherwise take
 * `0x10`, `0o17`, `0b101`, `1_000`, ` 12` or `+12` as numbers, other ones
 * than the X account ids written. The bytes are checked as the lines are
 * scanned for repeats anyway; only a quoted or not-line-shaped file costs a
 * pass of its own.
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
/** Bytes of a refused field kept to show it. */
const MAX_HEAD = 160;
/** Bytes an edge file's body may hold, when checked: digits, comma, CR, LF, and the quote (quoted CSV). */
const ALLOWED = new Uint8Array(256);
for (let c = ZERO; c <= ZERO + 9; c++) ALLOWED[c] = 1;
ALLOWED[COMMA] = ALLOWED[CR] = ALLOWED[NEWLINE] = ALLOWED[QUOTE] = 1;
/** What the scan of a line says of it. */
const KEEP = 0;
const REPEAT = 1;
const BAD = 2;

/**
 * A byte no decimal X account id has: on body line `line` (1 = first line
 * after the header, lines left out counted), in field `column` (0-based, by
 * the commas before it), whose text (quotes left out, cut at 40) is `field`.
 */
export class EdgeFieldError extends Error {
  override name = "EdgeFieldError";
  readonly line: number;
  readonly column: number;
  readonly field: string;
  constructor(line: number, column: number, field: string) {
    super(`line ${line}, field ${column + 1}: "${field}" is not a decimal number.`);
    this.line = line;
    this.column = column;
    this.field = field;
  }
}

export interface GroupDedupeLimits {
  /** Distinct lines remembered for one follower; past it, the run goes through as is. */
  maxGroup?: number;
  /** Lines dropped in all; past it, the rest of the file goes through as is. */
  maxDropped?: number;
  /** Refuse (EdgeFieldError) any byte but digits, comma, CR, LF and the quote. */
  checkDigits?: boolean;
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
  private readonly checkDigits: boolean;
  /** The bad byte a line scan found. */
  private failure: EdgeFieldError | undefined;
  /** Passing through and checking: commas on the current line before the bytes at hand… */
  private commas = 0;
  /** …and the start of the current field, when it began before them. */
  private fieldHead = Buffer.alloc(0);
  /** A refused field whose end is still to come. */
  private pending: BadField | undefined;

  constructor(limits: GroupDedupeLimits = {}) {
    super();
    this.seen = new PairSet(limits.maxGroup ?? 1_000_000);
    this.maxDropped = limits.maxDropped ?? 5_000_000;
    this.checkDigits = limits.checkDigits ?? false;
  }

  /** Line breaks that went through (the body's lines, less a last one without a break). */
  get lineBreaks(): number {
    return this.breaks;
  }

  override _transform(input: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.active || input.indexOf(QUOTE) !== -1 || this.dropped.length >= this.maxDropped) {
      callback(this.passThrough(input));
      return;
    }
    const chunk = this.carry.length ? Buffer.concat([this.carry, input]) : input;
    let start = 0;
    let keepFrom = 0;
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      this.breaks++;
      const verdict = this.scanLine(chunk, start, nl);
      if (verdict === REPEAT) {
        this.dropped.push(this.breaks);
        if (start > keepFrom) this.push(chunk.subarray(keepFrom, start));
        keepFrom = nl + 1;
      } else if (verdict === BAD) {
        callback(this.failure);
        return;
      }
      start = nl + 1;
    }
    if (start > keepFrom) this.push(chunk.subarray(keepFrom, start));
    // A partial last line waits for the rest of it (copied: `input` is not ours
    // to keep). No edge line is that long: past the cap this is not a file of
    // lines (CR-only breaks, one huge line) and it goes through as is.
    this.carry = Buffer.from(chunk.subarray(start));
    callback(this.carry.length > MAX_LINE ? this.passThrough(Buffer.alloc(0)) : undefined);
  }

  override _flush(callback: TransformCallback): void {
    if (this.pending) return callback(fieldError(this.pending));
    // Only a line still held back is unchecked: the last one, without a line break.
    if (this.carry.length) {
      const bad = this.check(this.carry, true);
      if (bad) return callback(bad);
      this.push(this.carry);
    }
    this.carry = Buffer.alloc(0);
    callback();
  }

  /**
   * Whether line [start, end) (without its LF; line number `this.breaks`)
   * repeats an earlier line of the same follower's run (and remembers it if
   * not), or, when checking, holds a byte no decimal id has (BAD, the error
   * in `failure`). Only a followed field of digits (and a CR before the
   * break) is remembered: two such fields with the same value, length and
   * ending are the same bytes. Anything else is never a repeat. (No quote
   * comes here: a chunk with one goes through `passThrough`.)
   */
  private scanLine(chunk: Buffer, start: number, end: number): number {
    const follower = this.follower;
    const known = this.followerLength;
    const checking = this.checkDigits;
    let p = start;
    let same = true;
    while (p < end && chunk[p] !== COMMA) {
      if (same && (p - start >= known || follower[p - start] !== chunk[p])) same = false;
      p++;
    }
    if (p === end) return checking ? this.checkRest(chunk, start, start, end) : KEEP;
    const length = p - start;
    if (!same || length !== known) {
      // A new follower: its bytes are checked once, not on each line of its run.
      if (checking && this.checkRest(chunk, start, start, p) === BAD) return BAD;
      this.seen.clear();
      if (length > MAX_FOLLOWER) {
        this.followerLength = -1;
        return checking ? this.checkRest(chunk, start, p + 1, end) : KEEP;
      }
      chunk.copy(follower, 0, start, p);
      this.followerLength = length;
    }
    let last = end;
    const cr = last > p + 1 && chunk[last - 1] === CR ? 1 : 0;
    last -= cr;
    const digits = last - (p + 1);
    if (digits === 0 || digits > MAX_DIGITS) return checking ? this.checkRest(chunk, start, p + 1, end) : KEEP;
    // All but the last 9 digits in `high` (≤ 11 digits), the last 9 in `low`: both exact.
    const split = last - 9;
    let high = 0;
    let low = 0;
    for (let k = p + 1; k < last; k++) {
      const d = chunk[k]! - ZERO;
      if (d < 0 || d > 9) return checking ? this.checkRest(chunk, start, k, end) : KEEP;
      if (k < split) high = high * 10 + d;
      else low = low * 10 + d;
    }
    const repeat = this.seen.addOrHas((high * 32 + digits) * 2 + cr, low);
    return repeat && this.dropped.length < this.maxDropped ? REPEAT : KEEP;
  }

  /** Checks [from, end) of the line starting at `start`: KEEP, or BAD. */
  private checkRest(chunk: Buffer, start: number, from: number, end: number): number {
    for (let k = from; k < end; k++) if (ALLOWED[chunk[k]!] === 0) return this.refuse(chunk, start, k, end);
    return KEEP;
  }

  /** BAD, with the error for byte `at` of the line [start, end) (line number `this.breaks`). */
  private refuse(chunk: Buffer, start: number, at: number, end: number): number {
    this.failure = fieldError(badField(chunk, start, at, end, this.breaks, 0));
    return BAD;
  }

  /**
   * Checks bytes going through as is (continuing the current line, which
   * holds `commas` commas so far, and whose number is `breaks + 1`): the
   * error for the first one no decimal id has, if any. Keeps `commas` and
   * `fieldHead` up. A refused field that goes on past `input` (unless it is
   * the `last`) is `pending` until its end comes: nothing more goes through.
   */
  private check(input: Buffer, last = false): EdgeFieldError | undefined {
    if (!this.checkDigits) return undefined;
    const pending = this.pending;
    if (pending) {
      let to = 0;
      while (to < input.length && !isSeparator(input[to]!)) to++;
      pending.text = Buffer.concat([pending.text, input.subarray(0, Math.min(to, MAX_HEAD))]).subarray(0, MAX_HEAD);
      return to < input.length || pending.text.length >= MAX_HEAD || last ? fieldError(pending) : undefined;
    }
    const n = input.length;
    let i = 0;
    while (i < n && ALLOWED[input[i]!] === 1) i++;
    if (i < n) {
      let line = this.breaks + 1;
      let lineStart = 0;
      for (let b = input.indexOf(NEWLINE); b !== -1 && b < i; b = input.indexOf(NEWLINE, b + 1)) {
        line++;
        lineStart = b + 1;
      }
      let end = input.indexOf(NEWLINE, i);
      if (end === -1) end = n;
      const bad = lineStart === 0 ? badField(input, 0, i, end, line, this.commas, this.fieldHead) : badField(input, lineStart, i, end, line, 0);
      if (bad.complete || last) return fieldError(bad);
      this.pending = bad;
      return undefined;
    }
    const lastBreak = input.lastIndexOf(NEWLINE);
    if (lastBreak !== -1) this.commas = 0;
    for (let c = input.indexOf(COMMA, lastBreak + 1); c !== -1; c = input.indexOf(COMMA, c + 1)) this.commas++;
    const fieldStart = Math.max(lastBreak, input.lastIndexOf(COMMA), input.lastIndexOf(CR)) + 1;
    const head = fieldStart === 0 ? Buffer.concat([this.fieldHead, input.subarray(0, MAX_HEAD)]) : input.subarray(fieldStart);
    this.fieldHead = Buffer.from(head.subarray(0, MAX_HEAD));
    return undefined;
  }

  /**
   * Stops filtering: whatever is pending, and everything after, goes through
   * untouched (line breaks still counted, bytes still checked); the error
   * when a byte is refused.
   */
  private passThrough(input: Buffer): EdgeFieldError | undefined {
    if (this.active) {
      // What is held back is the start of a line.
      this.active = false;
      this.commas = 0;
      this.fieldHead = Buffer.alloc(0);
    }
    if (this.carry.length) {
      const bad = this.check(this.carry);
      if (bad || this.pending) return bad;
      this.push(this.carry);
      this.carry = Buffer.alloc(0);
    }
    const bad = this.check(input);
    if (bad || this.pending) return bad;
    for (let i = input.indexOf(NEWLINE); i !== -1; i = input.indexOf(NEWLINE, i + 1)) this.breaks++;
    this.push(input);
    return undefined;
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

/** A refused field: where, and its bytes (up to MAX_HEAD); `complete` once they reach its end. */
interface BadField {
  line: number;
  column: number;
  text: Buffer;
  complete: boolean;
}

function isSeparator(c: number): boolean {
  return c === COMMA || c === CR || c === NEWLINE;
}

/**
 * The field of byte `at`, on a line whose bytes from `start` (after
 * `commasBefore` commas) end at `end` or before, cut at the commas and line
 * breaks around it (`head`: its start, when it began before `bytes`).
 */
function badField(bytes: Buffer, start: number, at: number, end: number, line: number, commasBefore: number, head = Buffer.alloc(0)): BadField {
  let column = commasBefore;
  let from = start;
  for (let c = bytes.indexOf(COMMA, start); c !== -1 && c < at; c = bytes.indexOf(COMMA, c + 1)) {
    column++;
    from = c + 1;
  }
  for (let k = at - 1; k >= from; k--) {
    if (bytes[k] === CR) {
      from = k + 1;
      break;
    }
  }
  let to = at;
  while (to < end && !isSeparator(bytes[to]!)) to++;
  const own = bytes.subarray(from, Math.min(to, from + MAX_HEAD));
  const text = Buffer.from((from === 0 ? Buffer.concat([head, own]) : own).subarray(0, MAX_HEAD));
  return { line, column, text, complete: to < bytes.length || text.length >= MAX_HEAD };
}

/** The error for a refused field, quotes left out, cut at 40 characters. */
function fieldError(bad: BadField): EdgeFieldError {
  const chars = [...bad.text.toString("utf8").replaceAll('"', "")];
  return new EdgeFieldError(bad.line, bad.column, chars.length > 40 ? `${chars.slice(0, 40).join("")}…` : chars.join(""));
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
