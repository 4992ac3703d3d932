/**
 * Deliveries only to inboxes on public addresses. An actor document names
 * its own `inbox` and `sharedInbox`, and Fedify posts to them as they are:
 * without this, anyone could have the bot send signed POSTs (and retry them)
 * into this machine's network. Checked as the outbox queue hands a delivery
 * to Fedify, so the address is the one the name has just before connecting.
 * Off when ALLOW_PRIVATE_ADDRESSES is set (tests, the sandbox).
 */
import type { Logger } from "../../src/logger.ts";
import { assertPublicHost, NonPublicAddressError } from "../../src/net/public-fetch.ts";

/** An admission check for the outbox queue: false drops the delivery (logged). */
export function publicInboxesOnly(log: Logger): (message: unknown) => Promise<boolean> {
  return async (message) => {
    const m = message as { type?: unknown; inbox?: unknown };
    // Fan-out messages only enqueue deliveries, which come through here in turn.
    if (m.type !== "outbox") return true;
    let url: URL;
    try {
      url = new URL(String(m.inbox));
    } catch {
      log.warn({ inbox: String(m.inbox).slice(0, 200) }, "fediverse: delivery to an invalid inbox address dropped");
      return false;
    }
    try {
      // A name that does not resolve goes on: Fedify's delivery fails and retries as usual.
      await assertPublicHost(url.hostname);
      return true;
    } catch (error) {
      if (!(error instanceof NonPublicAddressError)) throw error;
      log.warn({ inbox: url.origin }, "fediverse: delivery to a non-public address refused");
      return false;
    }
  };
}
