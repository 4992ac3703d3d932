/**
 * Import progress on a terminal: one line on stderr per phase, redrawn a few
 * times a second; a finished phase's line stays, showing where it ended and
 * how long it took, and the last one is cleared at the end (nothing at all
 * when stderr is not a terminal, so logs stay clean).
 */
import type { Progress } from "../import/types.ts";

export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { phase() {}, tick() {}, end() {} };
  let name = "";
  let total: number | undefined;
  let started = Date.now();
  let last = 0;
  // Units done in this phase, drawn or not (drawing is throttled).
  let done = 0;
  const draw = (done: number) => {
    const seconds = (Date.now() - started) / 1000;
    const share = total ? ` ${Math.min(100, Math.floor((done / total) * 100))}%` : "";
    stream.write(`\r\x1b[K${name}${share} (${seconds.toFixed(1)} s)`);
  };
  return {
    phase(next, size) {
      if (name) {
        draw(done);
        stream.write("\n");
      }
      name = next;
      total = size;
      started = Date.now();
      done = 0;
      draw(0);
    },
    tick(units) {
      done = units;
      const now = Date.now();
      if (now - last < 200) return;
      last = now;
      draw(units);
    },
    end() {
      if (name) stream.write("\r\x1b[K");
      name = "";
    },
  };
}
