/**
 * Logging the bot in: the session is kept in the database (sealed) and
 * resumed at the next start — Bluesky allows few logins a day — and every
 * token refresh is saved as it happens. A password login happens only when
 * there is no saved session or the saved one is refused.
 */
import { AtpAgent, type AtpSessionData } from "@atproto/api";
import type { Logger } from "../../src/logger.ts";
import type { BlueskyState } from "../../src/store/bluesky-state.ts";
import { describe, isAuthFailure } from "./errors.ts";

export interface SessionOptions {
  service: string;
  handle: string;
  appPassword: string;
  state: BlueskyState;
  log: Logger;
  fetch: typeof globalThis.fetch;
}

export interface OpenSession {
  agent: AtpAgent;
  did: string;
  handle: string;
  /** How the session was obtained (for logs and tests). */
  via: "resumed" | "login";
}

/** The key the session is saved under: the configured handle, so another account never resumes it. */
export function accountKey(handle: string): string {
  return handle.replace(/^@/, "").toLowerCase();
}

export async function openSession(options: SessionOptions): Promise<OpenSession> {
  const key = accountKey(options.handle);
  const { state, log } = options;
  const agent = new AtpAgent({
    service: options.service,
    fetch: options.fetch,
    persistSession(event, session) {
      if ((event === "create" || event === "update") && session) {
        state.saveSession(key, session).catch((error: unknown) => log.error({ err: describe(error) }, "cannot save Bluesky session"));
      } else if (event === "expired") {
        state.saveSession(key, undefined).catch(() => {});
      }
    },
  });
  const saved = (await state.loadSession(key)) as AtpSessionData | undefined;
  if (saved?.accessJwt && saved.refreshJwt) {
    try {
      await agent.resumeSession(saved);
      return { agent, did: agent.session!.did, handle: agent.session!.handle, via: "resumed" };
    } catch (error) {
      // Only a refused session justifies a new login; anything else (network, PDS down) is retried by the caller.
      if (!isAuthFailure(error)) throw error;
      log.info({ reason: describe(error) }, "saved Bluesky session refused: logging in again");
    }
  }
  await agent.login({ identifier: key, password: options.appPassword });
  return { agent, did: agent.session!.did, handle: agent.session!.handle, via: "login" };
}
