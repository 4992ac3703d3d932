/**
 * How the reconnection reaches a person outside a conversation (progress,
 * summary, "authorized"): a DM on one of their accounts, sent by the bot of
 * that platform. The service composes it from the bots that are on.
 */
import type { Identity } from "../store/index.ts";

export interface Messenger {
  /** Sends `text` privately to `to`; false when that channel cannot deliver it (bot off, DMs closed). */
  send(to: Identity, text: string): Promise<boolean>;
}

/** A messenger that routes by platform to the bots that are running. */
export function routeMessages(byPlatform: Partial<Record<Identity["platform"], Messenger>>): Messenger {
  return {
    async send(to, text) {
      const channel = byPlatform[to.platform];
      return channel ? channel.send(to, text) : false;
    },
  };
}
