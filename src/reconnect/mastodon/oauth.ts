/**
 * Mastodon OAuth: one app per instance, registered on first use with the
 * fewest scopes the reconnection needs, then the authorization-code flow.
 *
 * Scopes: `read:accounts` (verify_credentials, lookup), `read:follows`
 * (relationships), `read:search` (search with resolve), `write:follows`
 * (follow). Instances older than Mastodon 2.4.3 know no granular scopes and
 * refuse such an app; those get `read write follow`.
 */
import { mastodonInstanceKey, type MastodonApp, type MastodonApps } from "../../store/mastodon-apps.ts";
import type { MastodonAuthorization } from "../types.ts";
import { MastodonApiError, MastodonClient } from "./client.ts";

export const GRANULAR_SCOPES = "read:accounts read:follows read:search write:follows";
export const LEGACY_SCOPES = "read write follow";

export interface MastodonOAuthOptions {
  apps: MastodonApps;
  /** Where instances send the person back: `${PUBLIC_URL}/connect/mastodon/callback`. */
  redirectUri: string;
  clientName: string;
  website?: string;
  /** Tests and the sandbox only. */
  allowPrivateAddresses?: boolean;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

/** What `complete` gives: the token to store, and who it belongs to. */
export type CompletedMastodonAuthorization = MastodonAuthorization & {
  /** `user@domain`, the domain being the instance's account domain. */
  acct: string;
  /** The profile page. */
  url: string;
  /** The actor URI when the instance tells it (Mastodon ≥ 4.2), else null. */
  actorUri: string | null;
};

/** The instance refused the app, the code or the token exchange. */
export class MastodonOAuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MastodonOAuthError";
  }
}

interface CredentialApplication {
  client_id?: string;
  client_secret?: string;
  scopes?: string[];
}

interface TokenResponse {
  access_token?: string;
  scope?: string;
}

export class MastodonOAuth {
  readonly #options: MastodonOAuthOptions;
  /** Registrations under way in this process, so concurrent first uses register once. */
  readonly #registering = new Map<string, Promise<MastodonApp>>();

  constructor(options: MastodonOAuthOptions) {
    this.#options = options;
  }

  /** The instance's authorize page for this person; registers the app first if needed. */
  async authorizeUrl(instanceOrigin: string, state: string): Promise<URL> {
    const app = await this.app(instanceOrigin);
    const url = new URL("/oauth/authorize", app.instance);
    url.searchParams.set("response_type", "code");
    url.searchParams.set("client_id", app.clientId);
    url.searchParams.set("redirect_uri", app.redirectUri);
    url.searchParams.set("scope", app.scopes);
    url.searchParams.set("state", state);
    return url;
  }

  /**
   * Exchanges the code from the callback for a token and finds whose it is.
   * The caller has checked the callback's `state` against the one it gave.
   * @throws MastodonOAuthError when the instance refuses the exchange
   */
  async complete(instanceOrigin: string, code: string): Promise<CompletedMastodonAuthorization> {
    const instance = mastodonInstanceKey(instanceOrigin);
    const app = await this.#options.apps.get(instance);
    if (!app) throw new MastodonOAuthError(`No app is registered on ${instance}.`);
    let token: TokenResponse;
    try {
      token = await this.#client(instance).request<TokenResponse>("POST", "/oauth/token", {
        auth: false,
        form: true,
        body: {
          grant_type: "authorization_code",
          code,
          client_id: app.clientId,
          client_secret: app.clientSecret,
          redirect_uri: app.redirectUri,
          scope: app.scopes,
        },
      });
    } catch (error) {
      if (error instanceof MastodonApiError && error.status === 401) {
        // Instances before Mastodon 4.3 may have "vacuumed" the app: register anew next time.
        await this.#options.apps.delete(instance, app.clientId);
      }
      if (error instanceof MastodonApiError && error.status > 0) {
        throw new MastodonOAuthError(`${instance} refused the code (${error.message}).`);
      }
      throw error;
    }
    if (!token.access_token) throw new MastodonOAuthError(`${instance} answered without an access token.`);
    const client = this.#client(instance, token.access_token);
    const account = await client.verifyCredentials();
    const domain = await this.#accountDomain(client);
    return {
      instance,
      accessToken: token.access_token,
      scope: token.scope ?? app.scopes,
      accountId: account.id,
      app: { clientId: app.clientId, clientSecret: app.clientSecret },
      acct: `${account.username}@${domain}`,
      url: account.url ?? new URL(`/@${account.username}`, instance).href,
      actorUri: account.uri ?? null,
    };
  }

  /**
   * Revokes a token at its instance (the person unlinks or is forgotten),
   * as the app it was issued to (Doorkeeper lets no other client revoke it);
   * a token stored without its app is tried with the instance's current one.
   * False, having sent nothing, when no app is known to revoke it with.
   */
  async revoke(authorization: MastodonAuthorization): Promise<boolean> {
    const instance = mastodonInstanceKey(authorization.instance);
    const app = authorization.app ?? (await this.#options.apps.get(instance));
    if (!app) return false;
    await this.#client(instance).request("POST", "/oauth/revoke", {
      auth: false,
      form: true,
      body: { client_id: app.clientId, client_secret: app.clientSecret, token: authorization.accessToken },
    });
    return true;
  }

  /** The app for `instanceOrigin`: the stored one, or one registered now. */
  async app(instanceOrigin: string): Promise<MastodonApp> {
    const instance = mastodonInstanceKey(instanceOrigin);
    const stored = await this.#options.apps.get(instance);
    if (stored && stored.redirectUri === this.#options.redirectUri) return stored;
    let pending = this.#registering.get(instance);
    if (!pending) {
      pending = this.#register(instance).finally(() => this.#registering.delete(instance));
      this.#registering.set(instance, pending);
    }
    return pending;
  }

  async #register(instance: string): Promise<MastodonApp> {
    const client = this.#client(instance);
    let scopes = GRANULAR_SCOPES;
    let created: CredentialApplication;
    try {
      created = await this.#createApp(client, scopes);
    } catch (error) {
      // Old instances refuse unknown scopes (422, sometimes 400).
      if (!(error instanceof MastodonApiError && (error.status === 422 || error.status === 400))) throw error;
      scopes = LEGACY_SCOPES;
      created = await this.#createApp(client, scopes);
    }
    if (!created.client_id || !created.client_secret) throw new MastodonOAuthError(`${instance} registered no usable app.`);
    const app = await this.#options.apps.add({
      instance,
      clientId: created.client_id,
      clientSecret: created.client_secret,
      redirectUri: this.#options.redirectUri,
      scopes: Array.isArray(created.scopes) && created.scopes.length > 0 ? created.scopes.join(" ") : scopes,
    });
    if (app.clientId === created.client_id) await this.#keepAlive(client, app);
    return app;
  }

  #createApp(client: MastodonClient, scopes: string): Promise<CredentialApplication> {
    return client.request<CredentialApplication>("POST", "/api/v1/apps", {
      auth: false,
      body: {
        client_name: this.#options.clientName,
        redirect_uris: this.#options.redirectUri,
        scopes,
        ...(this.#options.website ? { website: this.#options.website } : {}),
      },
    });
  }

  /**
   * Mastodon before 4.3 deletes apps that never had a token; a client
   * token keeps ours (Mastodon's documented workaround). Best effort.
   */
  async #keepAlive(client: MastodonClient, app: MastodonApp): Promise<void> {
    await client
      .request("POST", "/oauth/token", {
        auth: false,
        form: true,
        body: { grant_type: "client_credentials", client_id: app.clientId, client_secret: app.clientSecret, scope: app.scopes },
      })
      .catch(() => undefined);
  }

  /** The domain in the instance's accts (LOCAL_DOMAIN), which may differ from its web host. */
  async #accountDomain(client: MastodonClient): Promise<string> {
    const v2 = await client.request<{ domain?: string }>("GET", "/api/v2/instance", { auth: false }).catch(() => undefined);
    if (v2?.domain) return v2.domain.toLowerCase();
    const v1 = await client.request<{ uri?: string }>("GET", "/api/v1/instance", { auth: false }).catch(() => undefined);
    if (v1?.uri) return v1.uri.replace(/^https?:\/\//, "").replace(/\/.*$/, "").toLowerCase();
    return new URL(client.instance).host;
  }

  #client(instance: string, accessToken?: string): MastodonClient {
    return new MastodonClient({
      instance,
      ...(accessToken ? { accessToken } : {}),
      ...(this.#options.allowPrivateAddresses ? { allowPrivateAddresses: true } : {}),
      ...(this.#options.fetch ? { fetch: this.#options.fetch } : {}),
      ...(this.#options.timeoutMs ? { timeoutMs: this.#options.timeoutMs } : {}),
    });
  }
}
