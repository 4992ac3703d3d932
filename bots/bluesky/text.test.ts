import { describe, expect, it } from "vitest";
import { facetsFor } from "./outbox.ts";
import { graphemeCount, splitGraphemes } from "./text.ts";

describe("splitGraphemes", () => {
  it("keeps short text whole and cuts long text at line breaks or spaces, within the limit", () => {
    expect(splitGraphemes("hello", 300)).toEqual(["hello"]);
    const text = Array.from({ length: 40 }, (_, i) => `line ${i} with some words`).join("\n");
    const pieces = splitGraphemes(text, 300);
    expect(pieces.length).toBeGreaterThan(1);
    for (const p of pieces) expect(graphemeCount(p)).toBeLessThanOrEqual(300);
    expect(pieces.join("\n")).toBe(text);
  });

  it("counts emoji and accents as one grapheme each", () => {
    const text = "👩‍👩‍👧é".repeat(200);
    const pieces = splitGraphemes(text, 300);
    expect(pieces.map(graphemeCount)).toEqual([300, 100]);
    expect(pieces.join("")).toBe(text);
  });
});

describe("facetsFor", () => {
  it("links URLs and mentions known people by DID, with UTF-8 byte offsets", () => {
    const text = "@élodie.example.org voir https://exemple.fr/x";
    const facets = facetsFor(text, [{ did: "did:plc:elodie", handle: "élodie.example.org" }]) ?? [];
    const bytes = Buffer.from(text);
    const link = facets.find((f) => f.features[0]?.$type === "app.bsky.richtext.facet#link")!;
    expect(bytes.subarray(link.index.byteStart, link.index.byteEnd).toString()).toBe("https://exemple.fr/x");
    expect(facetsFor("@someone.test hi", [])).toBeUndefined();
  });
});
