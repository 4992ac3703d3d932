/**
 * Answers held for a retry (bluesky_event.replies, fediverse_inbound.replies):
 * they may hold link codes, one-time links, a person's matches, so they are
 * sealed with SECRET_KEY, as base64 text in their jsonb column, bound to
 * their event or note (`context`). Rows written before sealing hold plain
 * JSON and are read as they are.
 */
import type { SecretBox } from "./secrets.ts";

export function sealHeld(box: SecretBox, value: unknown, context: string): string {
  return box.seal(JSON.stringify(value), context).toString("base64");
}

/** What `sealHeld` kept; null when there is none or it cannot be opened (another key, another row): the message is then run again. */
export function openHeld(box: SecretBox, stored: unknown, context: string): unknown {
  if (stored === null || stored === undefined) return null;
  if (typeof stored !== "string") return stored;
  try {
    return JSON.parse(box.open(Buffer.from(stored, "base64"), context)) as unknown;
  } catch {
    return null;
  }
}
