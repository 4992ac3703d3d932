/**
 * Bluesky authorization by ATProto OAuth (@atproto/oauth-client-node): the
 * person signs in on their own PDS and grants us the right to create follow
 * records, nothing more. Sessions live in PostgreSQL (sealed), so every
 * replica can act for the person and refresh their tokens in turn.
 *
 * Two client forms, chosen by PUBLIC_URL:
 * - https: a confidential "web" client. Its client_id is the URL of its
 *   metadata document, it authenticates to the token endpoint with
 *   private_key_jwt (keys generated once, kept sealed in the database,
 *   public halves at jwks.json), and its tokens are DPoP-bound.
 * - http on localhost / 127.0.0.1 / [::1]: the ATProto loopback client
 *   (client_id `http://localhost?redirect_uri=…&scope=…`, redirect on
 *   127.0.0.1), for development and tests. Public client, DPoP-bound, tokens
 *   short-lived: never for production.
 */
import { Agent } from "@atproto/api";
import {
  JoseKey,
  Keyset,
  NodeOAuthClient,
  OAuthCallbackError,
  OAuthResolverError,
  TokenInvalidError,
  TokenRefreshError,
  TokenRevokedError,
  buildAtprotoLoopbackClientMetadata,
  type NodeSavedSession,
  type OAuthClientMetadataInput,
  type OAuthSession,
} from "@atproto/oauth-client-node";
import { Router } from "express";
import type { Locale } from "../../conversation/i18n/index.ts";
import { personLocale } from "../../conversation/language.ts";
import { html, PAGE_HEADERS, renderPage } from "../../web/html.ts";
import { browserLanguage } from "../../web/link-page.ts";
import type { BlueskyOAuthStore, PrivateJwk } from "../../store/bluesky-oauth.ts";
import { AuthorizationExpiredError } from "../types.ts";
import {
  UnknownAccountError,
  causes,
  handleResolverFor,
  isNotFound,
  networkFetch,
  parseIdentifier,
  type BlueskyResolverOptions,
} from "./identity.ts";

/**
 * What we ask for: the `atproto` base scope plus the granular permission to
 * create follow records in the person's repository. No reads of private
 * data, no posts, no deletes, no DMs.
 */
export const BLUESKY_OAUTH_SCOPE = "atproto repo:app.bsky.graph.follow?action=create";

export const CLIENT_METADATA_PATH = "/oauth/bluesky/client-metadata.json";
export const JWKS_PATH = "/oauth/bluesky/jwks.json";
export const CALLBACK_PATH = "/oauth/bluesky/callback";

export interface BlueskyOAuthOptions extends BlueskyResolverOptions {
  store: BlueskyOAuthStore;
  /** PUBLIC_URL: https in production; http on loopback selects the loopback client. */
  publicUrl: URL;
  /** Requested scope; defaults to {@link BLUESKY_OAUTH_SCOPE}. Must include `atproto`. */
  scope?: string;
  /** Shown on the PDS's consent page (confidential client). */
  clientName?: string;
}

/** What a completed authorization gives back. */
export interface BlueskyAuthorized {
  /** The account that granted access. */
  did: string;
  /** The `state` given to {@link BlueskyOAuth.authorize}, or null. */
  state: string | null;
}

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

// Errors the client raises when a stored session can no longer be used.
function isSessionGone(error: unknown): boolean {
  return (
    error instanceof TokenRefreshError ||
    error instanceof TokenRevokedError ||
    error instanceof TokenInvalidError ||
    (error instanceof Error && error.name === "AuthMethodUnsatisfiableError")
  );
}

export class BlueskyOAuth {
  readonly store: BlueskyOAuthStore;
  /** Whether this is the loopback (development) client rather than the confidential one. */
  readonly loopback: boolean;
  readonly scope: string;
  readonly redirectUri: string;
  readonly #options: BlueskyOAuthOptions;
  #ready: Promise<{ client: NodeOAuthClient; publicJwks: unknown }> | undefined;

  constructor(options: BlueskyOAuthOptions) {
    this.#options = options;
    this.store = options.store;
    this.scope = options.scope ?? BLUESKY_OAUTH_SCOPE;
    if (!this.scope.split(" ").includes("atproto")) throw new Error('The Bluesky OAuth scope must include "atproto".');
    const url = options.publicUrl;
    this.loopback = url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname);
    if (url.protocol !== "https:" && !this.loopback) {
      throw new Error("Bluesky OAuth needs an https PUBLIC_URL (http only on localhost, for development).");
    }
    if (this.loopback) {
      // Loopback redirects must name the IP, never "localhost" (RFC 8252 §8.3).
      const redirect = this.#url(CALLBACK_PATH);
      if (redirect.hostname === "localhost") redirect.hostname = "127.0.0.1";
      this.redirectUri = redirect.href;
    } else {
      this.redirectUri = this.#url(CALLBACK_PATH).href;
    }
  }

  /** An absolute URL under PUBLIC_URL (which may carry a path prefix). */
  #url(path: string): URL {
    const base = new URL(this.#options.publicUrl);
    if (!base.pathname.endsWith("/")) base.pathname += "/";
    base.search = "";
    base.hash = "";
    return new URL(path.replace(/^\//, ""), base);
  }

  /** The client metadata this instance presents (served at client-metadata.json). */
  clientMetadata(): OAuthClientMetadataInput {
    if (this.loopback) {
      // Exactly what the authorization server derives from the client_id itself.
      return buildAtprotoLoopbackClientMetadata({ scope: this.scope, redirect_uris: [this.redirectUri] });
    }
    return {
      client_id: this.#url(CLIENT_METADATA_PATH).href,
      client_name: this.#options.clientName ?? "reconnexion",
      client_uri: this.#url("/").href as `https://${string}`,
      application_type: "web",
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      redirect_uris: [this.redirectUri as `https://${string}`],
      scope: this.scope,
      token_endpoint_auth_method: "private_key_jwt",
      token_endpoint_auth_signing_alg: "ES256",
      dpop_bound_access_tokens: true,
      jwks_uri: this.#url(JWKS_PATH).href as `https://${string}`,
    };
  }

  #init(): Promise<{ client: NodeOAuthClient; publicJwks: unknown }> {
    this.#ready ??= this.#build().catch((error: unknown) => {
      this.#ready = undefined; // a database hiccup must not stick
      throw error;
    });
    return this.#ready;
  }

  async #build(): Promise<{ client: NodeOAuthClient; publicJwks: unknown }> {
    const jwks = await this.store.signingKeys(async () => {
      const key = await JoseKey.generate(["ES256"], `reconnexion-${Date.now().toString(36)}`);
      return key.privateJwk as PrivateJwk;
    });
    const keyset = new Keyset(await Promise.all(jwks.map((jwk) => JoseKey.fromJWK(jwk))));
    const options = this.#options;
    const client = new NodeOAuthClient({
      clientMetadata: this.clientMetadata(),
      // The loopback client is public: it must not present keys.
      ...(this.loopback ? {} : { keyset }),
      responseMode: "query",
      stateStore: this.store.stateStore,
      sessionStore: this.store.sessionStore,
      requestLock: (name, fn) => this.store.withLock(name, fn),
      fetch: networkFetch(options),
      handleResolver: handleResolverFor(options),
      ...(options.plcUrl ? { plcDirectoryUrl: options.plcUrl } : {}),
      allowHttp: options.allowPrivateAddresses ?? false,
    });
    return { client, publicJwks: keyset.publicJwks };
  }

  /**
   * Starts an authorization for a handle or DID: returns the PDS page to send
   * the person to. `state` (e.g. the one-time link's id) stays with the flow,
   * sealed in our database and never sent to the PDS, and comes back from
   * {@link callback}; the OAuth `state` parameter itself is a fresh random one.
   * @throws UnknownAccountError when the handle or DID cannot be resolved
   */
  async authorize(handleOrDid: string, state: string): Promise<URL> {
    const parsed = parseIdentifier(handleOrDid);
    if (!parsed) throw new UnknownAccountError(handleOrDid);
    const { client } = await this.#init();
    try {
      return await client.authorize("did" in parsed ? parsed.did : parsed.handle, { state, scope: this.scope });
    } catch (error) {
      // "No such account" (handle or DID unknown, handle and DID disagree),
      // as opposed to a directory or server that could not be reached.
      const unknown =
        error instanceof OAuthResolverError &&
        error.message.startsWith("Failed to resolve identity") &&
        (causes(error).some((e) => e.name === "IdentityResolverError") || isNotFound(error));
      if (unknown) throw new UnknownAccountError(handleOrDid, { cause: error });
      throw error;
    }
  }

  /**
   * Completes an authorization from the callback's query parameters: trades
   * the code for tokens and stores the session under the person's DID.
   * @throws OAuthCallbackError when the person declined, the flow is unknown or expired, or the exchange failed
   */
  async callback(params: URLSearchParams): Promise<BlueskyAuthorized> {
    const { client } = await this.#init();
    const { session, state } = await client.callback(params);
    return { did: session.did, state };
  }

  /**
   * An `Agent` acting for `did` with the stored session, refreshed when due.
   * @throws AuthorizationExpiredError when there is no usable session (never
   * authorized, revoked, expired). A call made with the agent fails the same
   * way (an XRPCError whose `cause` is an AuthorizationExpiredError; see
   * `isAuthorizationExpired`) when the server rejects the session mid-way.
   */
  async agentFor(did: string): Promise<Agent> {
    const { client } = await this.#init();
    let session: OAuthSession;
    try {
      session = await client.restore(did, "auto");
    } catch (error) {
      if (isSessionGone(error)) {
        throw new AuthorizationExpiredError(`The Bluesky authorization of ${did} expired or was revoked.`);
      }
      throw error;
    }
    const store = this.store;
    return new Agent({
      did: session.did,
      async fetchHandler(url: string, init: RequestInit) {
        const response = await session.fetchHandler(url, init);
        // The client already tried a refresh; when that failed it dropped the
        // session. A 401 with the session still stored is something else
        // (a network failure during the refresh): let the caller retry.
        if (response.status === 401 && !(await store.hasSession(did))) {
          await response.body?.cancel();
          throw new AuthorizationExpiredError(`The Bluesky authorization of ${did} was revoked.`);
        }
        return response;
      },
    });
  }

  /** Whether a session is stored for `did` (it may still turn out revoked). */
  hasSession(did: string): Promise<boolean> {
    return this.store.hasSession(did);
  }

  /**
   * Revokes the session at the person's authorization server (best effort)
   * and always forgets it here.
   */
  async revoke(did: string): Promise<void> {
    try {
      const { client } = await this.#init();
      await client.revoke(did);
    } catch {
      // The server may be unreachable; the tokens die with their lifetime.
    } finally {
      await this.store.deleteSession(did);
    }
  }

  /**
   * Revokes a session this client no longer keeps (one moved to the
   * revocation outbox) at its authorization server, with the DPoP key and
   * client authentication it was issued to. Revoking the refresh token ends
   * the whole grant. A token the server no longer knows counts as revoked
   * (RFC 7009).
   * @throws when the server could not be reached or refused: try again later
   */
  async revokeSession(saved: NodeSavedSession): Promise<void> {
    const { client } = await this.#init();
    const dpopKey = await JoseKey.fromJWK(saved.dpopJwk);
    const server = await client.serverFactory.fromIssuer(saved.tokenSet.iss, saved.authMethod, dpopKey);
    // Not `server.revoke()`, which ignores every failure: here a failure is tried again.
    await server.request("revocation", { token: saved.tokenSet.refresh_token ?? saved.tokenSet.access_token });
  }

  /**
   * The HTTP side: client metadata, public keys and the callback, which
   * stores the session then shows the page `onAuthorized` returns.
   */
  router(onAuthorized: (result: BlueskyAuthorized) => Promise<string>, options: { defaultLanguage?: string } = {}): Router {
    const router = Router();
    router.get(CLIENT_METADATA_PATH, async (_req, res) => {
      try {
        const { client } = await this.#init();
        res.set("cache-control", "public, max-age=300").json(client.clientMetadata);
      } catch {
        res.status(503).json({ error: "unavailable" });
      }
    });
    router.get(JWKS_PATH, async (_req, res) => {
      try {
        const { publicJwks } = await this.#init();
        res.set("cache-control", "public, max-age=300").json(publicJwks);
      } catch {
        res.status(503).json({ error: "unavailable" });
      }
    });
    router.get(CALLBACK_PATH, async (req, res) => {
      // The URL carries a code: kept out of caches and referrers (PAGE_HEADERS), and the pages framed by nobody.
      res.set(PAGE_HEADERS);
      // Nothing here says whose link it was: the browser's language, else the default.
      const locale = personLocale(undefined, options.defaultLanguage ?? "fr", browserLanguage(req));
      let result: BlueskyAuthorized;
      try {
        result = await this.callback(new URLSearchParams(req.originalUrl.split("?")[1] ?? ""));
      } catch (error) {
        res.status(400).type("html").send(errorPage(locale, callbackProblem(error)));
        return;
      }
      try {
        res.type("html").send(await onAuthorized(result));
      } catch {
        res.status(500).type("html").send(errorPage(locale, "internal"));
      }
    });
    return router;
  }
}

type Problem = "declined" | "expired" | "failed" | "internal";

function callbackProblem(error: unknown): Problem {
  if (!(error instanceof OAuthCallbackError)) return "failed";
  const code = error.params.get("error");
  if (code === "access_denied") return "declined";
  if (/Unknown authorization session|Missing "state"/.test(error.message)) return "expired";
  return "failed";
}

/** A short page without details: no stack, no token, nothing from the request. */
function errorPage(locale: Locale, problem: Problem): string {
  const title = locale.web.blueskyOAuthTitle;
  return renderPage({ lang: locale.code, title, body: html`<h1>${title}</h1><p>${locale.web.oauthProblem[problem]}</p>` });
}
