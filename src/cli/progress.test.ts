import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { terminalProgress } from "./progress.ts";

/** A stand-in for stderr, a terminal or not, that keeps what is written to it. */
function fakeStream(isTTY: boolean): NodeJS.WriteStream & { writes: string[] } {
  const writes: string[] = [];
  const stream = {
    isTTY,
    writes,
    write(chunk: string) {
      writes.push(chunk);
      return true;
    },
  };
  return stream as unknown as NodeJS.WriteStream & { writes: string[] };
}

const CLEAR = "\r\x1b[K";

describe("terminalProgress", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date("2026-01-01T00:00:00Z"));
  });
  afterEach(() => vi.useRealTimers());

  it("prints nothing when its stream is not a terminal", () => {
    const stream = fakeStream(false);
    const progress = terminalProgress(stream);
    progress.phase("reading", 100);
    vi.advanceTimersByTime(1000);
    progress.tick(50);
    progress.phase("merging");
    progress.end();
    expect(stream.writes).toEqual([]);
  });

  it("redraws one line per phase: its name, its share when the total is known, and its time", () => {
    const stream = fakeStream(true);
    const progress = terminalProgress(stream);
    progress.phase("reading", 200);
    expect(stream.writes).toEqual([`${CLEAR}reading 0% (0.0 s)`]);
    vi.advanceTimersByTime(300);
    progress.tick(50);
    expect(stream.writes.at(-1)).toBe(`${CLEAR}reading 25% (0.3 s)`);
    vi.advanceTimersByTime(1200);
    progress.tick(250); // more than announced: never past 100%
    expect(stream.writes.at(-1)).toBe(`${CLEAR}reading 100% (1.5 s)`);
    // A new phase goes on a line of its own, its time counted from its start, with no share when no total is known.
    progress.phase("merging");
    expect(stream.writes.slice(-2)).toEqual(["\n", `${CLEAR}merging (0.0 s)`]);
    vi.advanceTimersByTime(2000);
    progress.tick(1);
    expect(stream.writes.at(-1)).toBe(`${CLEAR}merging (2.0 s)`);
  });

  it("redraws at most five times a second, however often it is told", () => {
    const stream = fakeStream(true);
    const progress = terminalProgress(stream);
    progress.phase("reading", 1000);
    vi.advanceTimersByTime(250);
    for (let done = 1; done <= 100; done++) {
      progress.tick(done);
      vi.advanceTimersByTime(1);
    }
    // 100 ticks over 100 ms: the first is drawn, the rest within 200 ms of it are not.
    expect(stream.writes).toEqual([`${CLEAR}reading 0% (0.0 s)`, `${CLEAR}reading 0% (0.3 s)`]);
    vi.advanceTimersByTime(200);
    progress.tick(500);
    expect(stream.writes.at(-1)).toBe(`${CLEAR}reading 50% (0.6 s)`);
  });

  it("leaves each finished phase's line showing where it ended and how long it took, then clears the last one at the end", () => {
    const stream = fakeStream(true);
    const progress = terminalProgress(stream);
    progress.phase("reading", 100);
    vi.advanceTimersByTime(300);
    progress.tick(40);
    vi.advanceTimersByTime(50);
    progress.tick(100); // within 200 ms of the last drawing: not drawn now
    vi.advanceTimersByTime(50);
    expect(stream.writes.at(-1)).toBe(`${CLEAR}reading 40% (0.3 s)`);
    progress.phase("matching");
    // The line left behind says 100% and 0.4 s, not the 40% last drawn.
    expect(stream.writes.slice(-3)).toEqual([`${CLEAR}reading 100% (0.4 s)`, "\n", `${CLEAR}matching (0.0 s)`]);
    vi.advanceTimersByTime(100);
    progress.tick(5);
    expect(stream.writes.at(-1)).toBe(`${CLEAR}matching (0.1 s)`);
    progress.end();
    expect(stream.writes.at(-1)).toBe(CLEAR);
    const count = stream.writes.length;
    progress.end(); // twice, or without a phase: nothing more
    expect(stream.writes).toHaveLength(count);
  });

  it("writes nothing at the end when no phase began", () => {
    const stream = fakeStream(true);
    terminalProgress(stream).end();
    expect(stream.writes).toEqual([]);
  });
});
