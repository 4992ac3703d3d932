/**
 * The fallback authorization for Bluesky: an app password, entered on our web
 * page (never in a DM). We refuse main passwords — an app password can be
 * revoked on its own and cannot change the account's email or password —
 * and keep the session the login gives, so a job resumes it instead of
 * logging in again.
 */
import { Agent, CredentialSession, XRPCError, type AtpPersistSessionHandler, type AtpSessionData } from "@atproto/api";
import { AuthorizationExpiredError, type BlueskyAppPasswordAuthorization } from "../types.ts";
import {
  ForbiddenDestinationError,
  UnknownAccountError,
  causes,
  networkFetch,
  resolveAccount,
  type BlueskyResolverOptions,
} from "./identity.ts";

/** Why a login was refused, for the page to explain (in the person's language). */
export type BlueskyLoginProblem =
  /** Not an app password (the main password, or a typo in the format). */
  | "not_app_password"
  /** The server did not accept the identifier and app password. */
  | "wrong_password"
  /** No account answers to that handle or DID. */
  | "unknown_account"
  /** The account is suspended or deactivated. */
  | "account_unavailable"
  /** Too many attempts: try again later. */
  | "rate_limited"
  /** The account's server (or the directory) could not be reached. */
  | "unreachable";

const MESSAGES: Record<BlueskyLoginProblem, string> = {
  not_app_password:
    "This is not an app password. Create one in Bluesky (Settings → Privacy and security → App passwords): it looks like xxxx-xxxx-xxxx-xxxx. Never give your main password.",
  wrong_password: "Bluesky did not accept this app password for this account. Check it, or create a new one.",
  unknown_account: "No Bluesky account was found with this handle.",
  account_unavailable: "This Bluesky account is suspended or deactivated.",
  rate_limited: "Too many attempts. Please wait a few minutes and try again.",
  unreachable: "Your Bluesky server could not be reached. Please try again later.",
};

/** A login refused, with a message fit to show the person (no secret in it). */
export class BlueskyLoginError extends Error {
  readonly problem: BlueskyLoginProblem;
  constructor(problem: BlueskyLoginProblem, options?: { cause?: unknown }) {
    super(MESSAGES[problem], options);
    this.name = "BlueskyLoginError";
    this.problem = problem;
  }
}

export interface AppPasswordLoginOptions extends BlueskyResolverOptions {
  /** Handle (`alice.bsky.social`, `@alice…`), DID, or the account's email. */
  identifier: string;
  appPassword: string;
  /** Where to log in with an email (which names no server); default https://bsky.social. */
  service?: string;
}

/** App passwords as Bluesky makes them: four groups of four base32 letters. */
const APP_PASSWORD = /^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

/** Normalises an app password as typed; null when it cannot be one. */
export function normalizeAppPassword(input: string): string | null {
  const value = input.trim().toLowerCase();
  return APP_PASSWORD.test(value) ? value : null;
}

/**
 * Logs in with an app password on the account's own PDS (handle → DID →
 * DID document → PDS) and returns what to store, sealed, as the person's
 * authorization.
 * @throws BlueskyLoginError with a `problem` the page can explain
 */
export async function loginWithAppPassword(options: AppPasswordLoginOptions): Promise<BlueskyAppPasswordAuthorization> {
  // Checked before anything leaves the machine: a main password is never sent.
  const appPassword = normalizeAppPassword(options.appPassword);
  if (!appPassword) throw new BlueskyLoginError("not_app_password");

  const typed = options.identifier.trim();
  let service: string;
  let identifier: string;
  if (EMAIL.test(typed) && !typed.startsWith("@")) {
    service = options.service ?? "https://bsky.social";
    identifier = typed;
  } else {
    try {
      const account = await resolveAccount(typed, options);
      service = account.pds;
      identifier = account.did;
    } catch (error) {
      throw loginProblem(error);
    }
  }

  const session = new CredentialSession(new URL(service), networkFetch(options));
  try {
    await session.login({ identifier, password: appPassword });
  } catch (error) {
    throw loginProblem(error);
  }
  const data = session.session!;
  if (!isAppPasswordSession(data)) {
    // Only a main password gets a full-access session: end it and refuse.
    await session.logout();
    throw new BlueskyLoginError("not_app_password");
  }
  return {
    did: data.did,
    // The PDS the login landed on (an entryway hands over to the account's own).
    service: session.pdsUrl?.href ?? new URL(service).href,
    // The DID, not the handle: it survives handle changes.
    identifier: data.did,
    appPassword,
    session: data,
  };
}

/**
 * Ends the saved session at the PDS (its refresh token stops working), when
 * the person asks to be forgotten. The app password itself can only be
 * revoked by its owner, from a full sign-in: the person is told so.
 */
export async function endAppPasswordSession(
  auth: BlueskyAppPasswordAuthorization,
  options: { allowPrivateAddresses?: boolean } = {},
): Promise<void> {
  const saved = asSessionData(auth.session);
  if (!saved) return;
  // deleteSession takes the refresh token as its bearer.
  const response = await networkFetch(options)(new URL("/xrpc/com.atproto.server.deleteSession", auth.service), {
    method: "POST",
    headers: { authorization: `Bearer ${saved.refreshJwt}` },
  });
  if (response.ok) return void (await response.body?.cancel());
  const error = ((await response.json().catch(() => ({}))) as { error?: unknown }).error;
  // The session had already ended: 401, or 400 ExpiredToken (expired, or revoked).
  if (response.status === 401 || (response.status === 400 && error === "ExpiredToken")) return;
  throw Object.assign(new Error(`deleteSession answered ${response.status}`), { status: response.status });
}

/**
 * An `Agent` acting for the person with their app password: resumes the
 * saved session (refreshing it, so no new login), falls back to one new
 * login when the session is gone, and reports every new session through
 * `onSessionChange` so it can be saved (sealed) again.
 * @throws AuthorizationExpiredError when the app password was revoked (or
 * the account is no longer usable); calls made later with the agent fail
 * the same way (an XRPCError whose `cause` is one; see `isAuthorizationExpired`)
 * @throws other errors (network) when the server could not be reached: retry later
 */
export async function appPasswordAgent(
  auth: BlueskyAppPasswordAuthorization,
  onSessionChange: (auth: BlueskyAppPasswordAuthorization) => void | Promise<void>,
  options: { allowPrivateAddresses?: boolean } = {},
): Promise<Agent> {
  let current = auth;
  let saving: Promise<void> = Promise.resolve();
  const persist: AtpPersistSessionHandler = (event, data) => {
    if ((event === "create" || event === "update") && data) {
      const next = { ...current, session: data };
      current = next;
      // Saves run in order; a failed one does not block the next.
      saving = saving.catch(() => {}).then(() => onSessionChange(next));
      // Refreshes mid-run cannot report a failed save: the next resume logs in again.
      saving.catch(() => {});
    }
  };
  const session = new CredentialSession(new URL(auth.service), networkFetch(options), persist);

  const login = async (): Promise<void> => {
    try {
      await session.login({ identifier: auth.identifier, password: auth.appPassword });
    } catch (error) {
      if (isRejection(error)) {
        throw new AuthorizationExpiredError("The Bluesky app password was revoked or no longer works.");
      }
      throw error;
    }
    if (session.did !== auth.did || !isAppPasswordSession(session.session!)) {
      await session.logout();
      throw new AuthorizationExpiredError("The Bluesky app password no longer opens this account.");
    }
  };

  let resumed = false;
  const saved = asSessionData(auth.session);
  if (saved && saved.did === auth.did) {
    try {
      await session.resumeSession(saved);
      resumed = true;
    } catch (error) {
      // A rejected session means logging in again; anything else is transient.
      if (!isRejection(error)) throw error;
    }
  }
  if (!resumed) await login();
  await saving;

  let loggedInAgain = !resumed;
  return new Agent({
    get did() {
      return session.did;
    },
    async fetchHandler(url: string, init: RequestInit) {
      const hadSession = session.hasSession;
      const response = await session.fetchHandler(url, init);
      // CredentialSession drops its session when a refresh is rejected; any
      // other failure leaves it in place (and the response to the caller).
      if (!hadSession || session.hasSession) return response;
      await response.body?.cancel();
      if (loggedInAgain) throw new AuthorizationExpiredError("The Bluesky app password was revoked.");
      loggedInAgain = true;
      await login();
      return session.fetchHandler(url, init);
    },
  });
}

/** The credentials were refused (as opposed to a network or server failure). */
function isRejection(error: unknown): boolean {
  return (
    error instanceof XRPCError &&
    (error.status === 401 ||
      ["AuthenticationRequired", "ExpiredToken", "InvalidToken", "AccountTakedown", "AccountDeactivated"].includes(
        error.error ?? "",
      ))
  );
}

function loginProblem(error: unknown): BlueskyLoginError {
  if (error instanceof BlueskyLoginError) return error;
  if (error instanceof UnknownAccountError) return new BlueskyLoginError("unknown_account", { cause: error });
  if (error instanceof XRPCError) {
    switch (error.error) {
      case "AuthFactorTokenRequired": // only main passwords get an email code
        return new BlueskyLoginError("not_app_password", { cause: error });
      case "AccountTakedown":
      case "AccountDeactivated":
        return new BlueskyLoginError("account_unavailable", { cause: error });
    }
    if (error.status === 401) return new BlueskyLoginError("wrong_password", { cause: error });
    if (error.status === 429) return new BlueskyLoginError("rate_limited", { cause: error });
    if (error.status === 400 && /identifier|handle|account/i.test(error.message)) {
      return new BlueskyLoginError("unknown_account", { cause: error });
    }
  }
  // A handle or DID document pointing at a private address: not an account we can use.
  if (causes(error).some((e) => e instanceof ForbiddenDestinationError)) {
    return new BlueskyLoginError("unknown_account", { cause: error });
  }
  return new BlueskyLoginError("unreachable", { cause: error });
}

/** Access tokens carry the session's scope: `com.atproto.access` means a main password. */
function isAppPasswordSession(data: AtpSessionData): boolean {
  const scope = jwtScope(data.accessJwt);
  return scope === "com.atproto.appPass" || scope === "com.atproto.appPassPrivileged";
}

function jwtScope(jwt: string): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString("utf8")) as { scope?: unknown };
    return typeof payload.scope === "string" ? payload.scope : undefined;
  } catch {
    return undefined;
  }
}

function asSessionData(value: unknown): AtpSessionData | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const s = value as Partial<AtpSessionData>;
  return typeof s.did === "string" && typeof s.accessJwt === "string" && typeof s.refreshJwt === "string"
    ? (value as AtpSessionData)
    : undefined;
}
