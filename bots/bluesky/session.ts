/**
 * Logging the bot in: the session is kept in the database (sealed) and
 * resumed at the next start — Bluesky allows few logins a day — and every
 * token refresh is saved as it happens. A password login happens only when
 * there is no saved session, the saved one is refused, or it was opened
 * with another app password than the one configured now (an operator who
 * replaces it, say to give the bot access to direct messages, means it).
 */
import { createHash } from "node:crypto";
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
  // Which app password opened a session (a hash, kept sealed with it).
  const credential = createHash("sha256").update(`${key}\0${options.appPassword}`).digest("base64url");
  const agent = new AtpAgent({
    service: options.service,
    fetch: options.fetch,
    persistSession(event, session) {
      if ((event === "create" || event === "update") && session) {
        state.saveSession(key, { ...session, credential }).catch((error: unknown) => log.error({ err: describe(error) }, "cannot save Bluesky session"));
      } else if (event === "expired") {
        state.saveSession(key, undefined).catch(() => {});
      }
    },
  });
  const { credential: savedWith, ...saved } = ((await state.loadSession(key)) ?? {}) as Partial<AtpSessionData> & { credential?: string };
  if (saved.accessJwt && saved.refreshJwt && savedWith !== credential) {
    log.info("the saved Bluesky session was opened with another app password than BLUESKY_APP_PASSWORD: logging in with the new one");
  } else if (saved.accessJwt && saved.refreshJwt) {
    try {
      await agent.resumeSession(saved as AtpSessionData);
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
