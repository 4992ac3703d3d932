/**
 * Mastodon OAuth apps, one per instance: registered on first use (by
 * src/reconnect/mastodon/oauth.ts) and reused for everyone on that instance.
 * Client secrets are sealed with AES-256-GCM before they reach the database.
 */
import type { SecretBox } from "./secrets.ts";
import type { Queryable } from "./types.ts";

/** An app as the instance registered it. */
export interface MastodonApp {
  /** The instance's origin, lower-cased: `https://mastodon.social`. */
  instance: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  /** Space-separated scopes the instance accepted for the app. */
  scopes: string;
  createdAt: Date;
}

export type NewMastodonApp = Omit<MastodonApp, "createdAt">;

/**
 * The key an instance is stored under: its origin, lower-cased, without path
 * or default port. Accepts `Mastodon.Social`, `https://mastodon.social/` and
 * the like; a bare host means https.
 * @throws when `input` is not an http(s) host or URL
 */
export function mastodonInstanceKey(input: string): string {
  const trimmed = input.trim();
  const url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `https://${trimmed}`);
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error(`Not an instance URL: ${input}`);
  if (url.username || url.password) throw new Error(`Not an instance URL: ${input}`);
  return url.origin.toLowerCase();
}

const context = (instance: string) => `mastodon-app:${instance}`;

interface Row {
  instance: string;
  client_id: string;
  client_secret_sealed: Buffer;
  redirect_uri: string;
  scopes: string;
  created_at: Date;
}

export class MastodonApps {
  private readonly db: Queryable;
  private readonly box: SecretBox;
  constructor(db: Queryable, box: SecretBox) {
    this.db = db;
    this.box = box;
  }

  /** The app registered on `instance` (any spelling of it), if any. */
  async get(instance: string): Promise<MastodonApp | undefined> {
    const key = mastodonInstanceKey(instance);
    const [row] = await this.db<Row[]>`
      select instance, client_id, client_secret_sealed, redirect_uri, scopes, created_at
      from mastodon_app where instance = ${key}`;
    return row && this.fromRow(row);
  }

  /**
   * Keeps `app` unless an app with the same redirect URI is already stored
   * for its instance — then that one wins, so that two workers registering
   * at once agree on one client (a code issued to one cannot be exchanged by
   * the other). An app for another redirect URI is replaced.
   * @returns the app now stored
   */
  async add(app: NewMastodonApp): Promise<MastodonApp> {
    const key = mastodonInstanceKey(app.instance);
    const sealed = this.box.seal(app.clientSecret, context(key));
    const [row] = await this.db<Row[]>`
      insert into mastodon_app (instance, client_id, client_secret_sealed, redirect_uri, scopes)
      values (${key}, ${app.clientId}, ${sealed}, ${app.redirectUri}, ${app.scopes})
      on conflict (instance) do update set
        client_id = excluded.client_id, client_secret_sealed = excluded.client_secret_sealed,
        redirect_uri = excluded.redirect_uri, scopes = excluded.scopes,
        created_at = now(), updated_at = now()
      where mastodon_app.redirect_uri <> excluded.redirect_uri
      returning instance, client_id, client_secret_sealed, redirect_uri, scopes, created_at`;
    if (row) return this.fromRow(row);
    const kept = await this.get(key);
    if (!kept) throw new Error(`Mastodon app for ${key} vanished while being saved.`);
    return kept;
  }

  /**
   * Forgets the app of `instance` (e.g. the instance no longer knows its
   * client); with `clientId`, only if that is still the stored client.
   */
  async delete(instance: string, clientId?: string): Promise<boolean> {
    const key = mastodonInstanceKey(instance);
    const result = clientId === undefined
      ? await this.db`delete from mastodon_app where instance = ${key}`
      : await this.db`delete from mastodon_app where instance = ${key} and client_id = ${clientId}`;
    return result.count > 0;
  }

  private fromRow(row: Row): MastodonApp {
    return {
      instance: row.instance,
      clientId: row.client_id,
      clientSecret: this.box.open(row.client_secret_sealed, context(row.instance)),
      redirectUri: row.redirect_uri,
      scopes: row.scopes,
      createdAt: row.created_at,
    };
  }
}
