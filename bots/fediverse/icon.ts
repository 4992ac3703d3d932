/**
 * The bot's avatar: a 256×256 PNG drawn here (two linked rings on a blue
 * field), so the service ships no binary asset. Computed once.
 */
import { deflateSync } from "node:zlib";

const SIZE = 256;

function crc32(buf: Buffer): number {
  let c = ~0;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "ascii");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

function draw(): Buffer {
  const rows: Buffer[] = [];
  const ring = (x: number, y: number, cx: number) => {
    const d = Math.hypot(x - cx, y - 128);
    return d > 46 && d < 62;
  };
  for (let y = 0; y < SIZE; y++) {
    const row = Buffer.alloc(1 + SIZE * 3);
    for (let x = 0; x < SIZE; x++) {
      const on = ring(x, y, 100) || ring(x, y, 156);
      const [r, g, b] = on ? [255, 255, 255] : [43, 90, 196];
      row[1 + x * 3] = r;
      row[2 + x * 3] = g;
      row[3 + x * 3] = b;
    }
    rows.push(row);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(SIZE, 0);
  header.writeUInt32BE(SIZE, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // truecolour
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(Buffer.concat(rows))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

let png: Buffer | undefined;
export function iconPng(): Buffer {
  png ??= draw();
  return png;
}

export const ICON_PATH = "/fediverse/icon.png";
