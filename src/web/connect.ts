/**
 * The pages behind the one-time links the bots send by DM:
 *
 *   GET  /connect/:token                   what will be authorized, and how
 *   POST /connect/:token/bluesky           → Bluesky OAuth (the person's PDS)
 *   POST /connect/:token/bluesky/app-password
 *   POST /connect/:token/mastodon          → the person's instance's OAuth page
 *   GET  /connect/mastodon/callback        ← back from the instance
 *   GET  /export/:token/following_accounts.csv   a page with a download button
 *   POST /export/:token/following_accounts.csv   the file (the link is used up)
 *
 * GETs never use a link up (link previews fetch them); only a completed
 * authorization or a download does. An authorization counts only for the
 * account the link was made for: nobody can attach an account they do not
 * control, nor get someone else's followed from theirs.
 */
import express, { Router, type Request, type Response } from "express";
import type { Config } from "../config.ts";
import type { Locale } from "../conversation/i18n/index.ts";
import { personLocale } from "../conversation/language.ts";
import type { Logger } from "../logger.ts";
import type { Identity, Store, TargetPlatform } from "../store/index.ts";
import { EXPORT_LIMIT } from "../store/matches.ts";
import type { WebLinkGrant } from "../store/web-links.ts";
import type { BlueskyAppPasswordAuthorization, MastodonAuthorization } from "../reconnect/types.ts";
import { BlueskyLoginError } from "../reconnect/bluesky/app-password.ts";
import { html, prose, renderPage, type SafeHtml } from "./html.ts";
import { linkPageLocale, sendLinkPage } from "./link-page.ts";

/** What the pages need from the Bluesky side (src/reconnect/bluesky). */
export interface BlueskyConnect {
  /** Starts OAuth on the person's PDS; undefined where OAuth is not configured. */
  authorize?(handleOrDid: string, state: string): Promise<URL>;
  loginWithAppPassword(input: { identifier: string; appPassword: string }): Promise<BlueskyAppPasswordAuthorization>;
}

/** What the pages need from the Mastodon side (src/reconnect/mastodon). */
export interface MastodonConnect {
  authorizeUrl(instance: string, state: string): Promise<URL>;
  complete(instance: string, code: string): Promise<MastodonAuthorization & { acct: string; url: string; actorUri: string | null }>;
  /** Revokes a token at its instance (one we will not keep). */
  revoke?(authorization: MastodonAuthorization): Promise<unknown>;
}

export interface ConnectContext {
  store: Store;
  config: Config;
  log: Logger;
  bluesky: BlueskyConnect;
  mastodon: MastodonConnect;
  /** An authorization was stored: tell the person, resume their jobs. */
  onAuthorized(personId: number, platform: TargetPlatform): Promise<unknown>;
}

/** Wrong app passwords allowed per link before it stops taking them. */
const APP_PASSWORD_TRIES = 5;

/** The API origin of a fediverse account: where its actor lives (its web domain). */
export function instanceOf(identity: Identity): string {
  return new URL(identity.apiBase ?? identity.stableId!).origin;
}

export function connectRoutes(ctx: ConnectContext): Router {
  const router = Router();
  const form = express.urlencoded({ extended: false, limit: "4kb" });
  const tries = new Map<string, number>();

  /** The link's grant, its identity and the person's locale; or an answered "invalid link" page. */
  async function open(req: Request, res: Response, purpose: "connect" | "export", token: string) {
    const grant = await ctx.store.webLinks.peek(token, purpose);
    const identity = grant && (await ctx.store.identities.get(grant.identityId));
    const locale = await localeOf(req, grant);
    if (!grant || !identity || identity.personId !== grant.personId || identity.platform === "x") {
      page(res, locale, locale.web.title, html`<p>${prose(locale.web.linkInvalid)}</p>`, 410);
      return undefined;
    }
    return { grant, identity: identity as Identity & { platform: TargetPlatform }, locale };
  }

  const localeOf = (req: Request, grant: WebLinkGrant | undefined) => linkPageLocale(ctx.store, ctx.config.defaultLanguage, req, grant?.personId);
  const page = sendLinkPage;

  /** Stores the authorization, uses the link up, tells the person; the "done" page. */
  async function finish(
    res: Response,
    token: string,
    opened: NonNullable<Awaited<ReturnType<typeof open>>>,
    save: (s: Store) => Promise<void>,
  ): Promise<void> {
    const { identity, locale } = opened;
    const used = await ctx.store.transaction(async (s) => {
      const grant = await s.webLinks.consume(token, "connect");
      if (grant) await save(s);
      return grant;
    });
    if (!used) {
      page(res, locale, locale.web.title, html`<p>${prose(locale.web.linkInvalid)}</p>`, 410);
      return;
    }
    ctx.log.info({ identity: identity.id, platform: identity.platform }, "connect: account authorized");
    await ctx.onAuthorized(identity.personId, identity.platform).catch((error: unknown) =>
      ctx.log.warn({ err: error }, "connect: could not resume the person's jobs"),
    );
    page(res, locale, locale.web.doneTitle, html`<p>${locale.web.done(identity.platform)}</p>`);
  }

  function failed(res: Response, locale: Locale, error: unknown, what: string): void {
    ctx.log.warn({ err: error instanceof Error ? error.message : String(error) }, `connect: ${what} failed`);
    page(res, locale, locale.web.title, html`<p class="error">${locale.web.failed}</p>`, 502);
  }

  router.get("/connect/:token", async (req, res) => {
    const opened = await open(req, res, "connect", req.params.token);
    if (!opened) return;
    const { identity, locale } = opened;
    const w = locale.web;
    const base = `/connect/${encodeURIComponent(req.params.token)}`;
    if (identity.platform === "bluesky") {
      const handle = identity.handle ?? identity.stableId ?? "";
      page(res, locale, w.title, html`
        <p>${w.blueskyIntro(handle)}</p>
        ${ctx.bluesky.authorize ? html`<form method="post" action="${base}/bluesky"><button type="submit">${w.blueskyOAuthButton}</button></form>` : ""}
        <h2>${w.appPasswordTitle}</h2>
        <p class="muted">${w.appPasswordHelp}</p>
        <form method="post" action="${base}/bluesky/app-password">
          <label for="p">${w.appPasswordLabel}</label>
          <input id="p" name="appPassword" type="password" autocomplete="off" required pattern="[A-Za-z0-9]{4}(-[A-Za-z0-9]{4}){3}">
          <p><button type="submit">${w.appPasswordSubmit}</button></p>
        </form>
        <p class="muted">${prose(w.privacy)}</p>`);
      return;
    }
    const instance = new URL(instanceOf(identity)).host;
    page(res, locale, w.title, html`
      <p>${w.mastodonIntro(identity.handle ?? "", instance)}</p>
      <form method="post" action="${base}/mastodon"><button type="submit">${w.mastodonButton(instance)}</button></form>
      <p class="muted">${prose(w.privacy)}</p>`);
  });

  router.post("/connect/:token/bluesky", async (req, res) => {
    const opened = await open(req, res, "connect", req.params.token);
    if (!opened || opened.identity.platform !== "bluesky" || !ctx.bluesky.authorize) return void (opened && res.redirect(303, `/connect/${encodeURIComponent(req.params.token)}`));
    try {
      const url = await ctx.bluesky.authorize(opened.identity.stableId!, req.params.token);
      res.redirect(303, url.href);
    } catch (error) {
      failed(res, opened.locale, error, "Bluesky OAuth start");
    }
  });

  router.post("/connect/:token/bluesky/app-password", form, async (req, res) => {
    const token = req.params.token;
    const opened = await open(req, res, "connect", token);
    if (!opened || opened.identity.platform !== "bluesky") return void (opened && res.redirect(303, `/connect/${encodeURIComponent(req.params.token)}`));
    const { identity, locale } = opened;
    const appPassword = typeof req.body?.appPassword === "string" ? req.body.appPassword.trim() : "";
    // Only wrong passwords count: a server out of reach is nobody's try.
    const attempts = tries.get(token) ?? 0;
    if (attempts >= APP_PASSWORD_TRIES) {
      page(res, locale, locale.web.title, html`<p class="error">${prose(locale.web.appPasswordTooManyTries(locale.commands.reconnect.words[0]!))}</p>`, 429);
      return;
    }
    let auth: BlueskyAppPasswordAuthorization;
    try {
      auth = await ctx.bluesky.loginWithAppPassword({ identifier: identity.stableId!, appPassword });
    } catch (error) {
      if (!(error instanceof BlueskyLoginError)) return failed(res, locale, error, "Bluesky app password");
      if (error.problem === "wrong_password" || error.problem === "not_app_password") {
        // Links are few and short-lived: a bound keeps a flood of junk tokens from growing the map.
        if (tries.size > 10_000) tries.clear();
        tries.set(token, attempts + 1);
      }
      page(res, locale, locale.web.title, html`<p class="error">${locale.web.appPasswordProblem[error.problem]}</p>
        <p><a href="/connect/${token}">←</a></p>`, error.problem === "rate_limited" ? 429 : error.problem === "unreachable" ? 502 : 400);
      return;
    }
    if (auth.did !== identity.stableId) {
      page(res, locale, locale.web.title, html`<p class="error">${locale.web.wrongAccount(identity.handle ?? identity.stableId!)}</p>`, 403);
      return;
    }
    tries.delete(token);
    await finish(res, token, opened, async (s) => {
      // The earlier grant (an OAuth session, another app password's session) goes, to be revoked at its server.
      await s.revocations.retire([identity.id]);
      await s.authorizations.save(identity.id, "bluesky-app-password", auth);
    });
  });

  router.post("/connect/:token/mastodon", async (req, res) => {
    const opened = await open(req, res, "connect", req.params.token);
    if (!opened || opened.identity.platform !== "fediverse") return void (opened && res.redirect(303, `/connect/${encodeURIComponent(req.params.token)}`));
    try {
      const url = await ctx.mastodon.authorizeUrl(instanceOf(opened.identity), sealState(ctx.store, req.params.token));
      res.redirect(303, url.href);
    } catch (error) {
      failed(res, opened.locale, error, "Mastodon OAuth start");
    }
  });

  router.get("/connect/mastodon/callback", async (req, res) => {
    const token = typeof req.query.state === "string" ? openState(ctx.store, req.query.state) : "";
    const code = typeof req.query.code === "string" ? req.query.code : "";
    const opened = await open(req, res, "connect", token);
    if (!opened) return;
    const { identity, locale } = opened;
    if (identity.platform !== "fediverse" || !code) {
      // The person said no on their instance (OAuth's access_denied): nothing failed.
      const declined = req.query.error === "access_denied";
      page(res, locale, locale.web.title, html`<p class="error">${declined ? locale.web.oauthProblem.declined : locale.web.failed}</p>`, 400);
      return;
    }
    const instance = instanceOf(identity);
    let auth: MastodonAuthorization & { acct: string; url: string; actorUri: string | null };
    try {
      auth = await ctx.mastodon.complete(instance, code);
    } catch (error) {
      failed(res, locale, error, "Mastodon OAuth callback");
      return;
    }
    // The token's account must be the linked one: its actor URI when the
    // instance tells it (Mastodon ≥ 4.2), else same server (we sent the
    // person there) and same username.
    const expectedUser = (identity.handle ?? "").split("@")[0]!.toLowerCase();
    const sameAccount = auth.actorUri
      ? auth.actorUri === identity.stableId
      : auth.acct.split("@")[0]!.toLowerCase() === expectedUser && new URL(auth.instance).origin === instance;
    if (!sameAccount) {
      // Someone else's token: never keep it, nor leave it valid at the instance.
      await ctx.mastodon.revoke?.(auth).catch(() => undefined);
      page(res, locale, locale.web.title, html`<p class="error">${locale.web.wrongAccount(identity.handle ?? "")}</p>`, 403);
      return;
    }
    const { instance: apiInstance, accessToken, scope, accountId, app } = auth;
    // With the app it was issued to: only that app can revoke it later.
    const stored: MastodonAuthorization = { instance: apiInstance, accessToken, scope, accountId, ...(app ? { app } : {}) };
    await finish(res, token, opened, async (s) => {
      // The earlier token goes, to be revoked at its instance — unless the
      // instance handed out the same one again (Doorkeeper can reuse tokens).
      // `save` drops a waiting revocation of the same token by its digest;
      // a grant stored before digests were kept has none, hence this check.
      const previous = await s.authorizations.get<MastodonAuthorization>(identity.id).catch(() => undefined);
      if (previous?.data.accessToken !== stored.accessToken) await s.revocations.retire([identity.id]);
      await s.authorizations.save(identity.id, "mastodon-oauth", stored);
    });
  });

  router.get("/export/:token/following_accounts.csv", async (req, res) => {
    const opened = await open(req, res, "export", req.params.token);
    if (!opened) return;
    const { identity, locale } = opened;
    const { handles, total } = await ctx.store.matches.handles(identity.personId, "fediverse");
    // Mastodon refuses a whole file longer than its follow limit: the file holds the most recent.
    if (total === 0) {
      page(res, locale, locale.web.exportTitle, html`<p>${locale.web.exportNothing}</p>`);
      return;
    }
    const capped = handles.length < total ? html`<p>${locale.web.exportCapped(handles.length, total, EXPORT_LIMIT)}</p>` : html``;
    page(res, locale, locale.web.exportTitle, html`
      <p>${locale.web.exportIntro(total)}</p>${capped}
      <form method="post"><button type="submit">${locale.web.exportButton}</button></form>`);
  });

  router.post("/export/:token/following_accounts.csv", async (req, res) => {
    const grant = await ctx.store.webLinks.consume(req.params.token, "export");
    if (!grant) {
      const locale = await localeOf(req, undefined);
      page(res, locale, locale.web.title, html`<p>${prose(locale.web.linkInvalid)}</p>`, 410);
      return;
    }
    const { handles } = await ctx.store.matches.handles(grant.personId, "fediverse");
    res
      .status(200)
      .set({
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="following_accounts.csv"',
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
      })
      .send(followingCsv(handles));
  });

  return router;
}

/**
 * The page shown when Bluesky OAuth comes back (the OAuth router calls it
 * with the authorized DID and our state, the connect token). The session
 * counts only if it is the linked account's.
 */
export function blueskyOAuthCompleted(ctx: ConnectContext & { revoke(did: string): Promise<void> }) {
  return async (result: { did: string; state: string | null }): Promise<string> => {
    const token = result.state ?? "";
    const grant = await ctx.store.webLinks.peek(token, "connect");
    const identity = grant && (await ctx.store.identities.get(grant.identityId));
    const person = grant && (await ctx.store.people.get(grant.personId));
    const locale = personLocale(person, ctx.config.defaultLanguage);
    const show = (title: string, body: SafeHtml) => renderPage({ lang: locale.code, title, body: html`<h1>${title}</h1>${body}` });
    // The client has already stored this session for the DID, in place of any
    // earlier one: when the flow does not count, revoke it, unless a working
    // authorization of that account uses it (revoking would stop its jobs).
    const revokeUnlessInUse = async () => {
      const owner = await ctx.store.identities.find({ platform: "bluesky", stableId: result.did });
      const inUse = owner && (await ctx.store.authorizations.get(owner.id).catch(() => undefined))?.kind === "bluesky-oauth";
      if (!inUse) await ctx.revoke(result.did).catch(() => undefined);
    };
    if (!grant || !identity || identity.platform !== "bluesky" || identity.personId !== grant.personId) {
      // A stale or replayed flow (two tabs, a used link).
      await revokeUnlessInUse();
      return show(locale.web.title, html`<p>${prose(locale.web.linkInvalid)}</p>`);
    }
    if (identity.stableId !== result.did) {
      // Another account's session: it authorizes nothing here.
      await revokeUnlessInUse();
      return show(locale.web.title, html`<p class="error">${locale.web.wrongAccount(identity.handle ?? identity.stableId ?? "")}</p>`);
    }
    const used = await ctx.store.transaction(async (s) => {
      const consumed = await s.webLinks.consume(token, "connect");
      // The session itself lives in the OAuth client's store (which has
      // already replaced any earlier session); this row says which kind to
      // use. An earlier app password's session goes, to be ended at the PDS.
      if (consumed) {
        await s.revocations.retire([identity.id], { kinds: ["bluesky-app-password"] });
        await s.authorizations.save(identity.id, "bluesky-oauth", { did: result.did });
      }
      return consumed;
    });
    if (!used) return show(locale.web.title, html`<p>${prose(locale.web.linkInvalid)}</p>`);
    ctx.log.info({ identity: identity.id, platform: "bluesky" }, "connect: account authorized (OAuth)");
    await ctx.onAuthorized(identity.personId, "bluesky").catch((error: unknown) =>
      ctx.log.warn({ err: error }, "connect: could not resume the person's jobs"),
    );
    return show(locale.web.doneTitle, html`<p>${locale.web.done("bluesky")}</p>`);
  };
}

/**
 * The OAuth `state` given to a Mastodon instance: the link's token sealed
 * (AES-GCM under SECRET_KEY), so the instance, its logs and the browser's
 * history there never hold a token that opens the link.
 */
export function sealState(store: Store, token: string): string {
  return Buffer.from(store.box.seal(token, STATE_CONTEXT)).toString("base64url");
}

/** The token inside a state from `sealState`; "" for anything else (then the link is "invalid"). */
export function openState(store: Store, state: string): string {
  try {
    return store.box.open(Buffer.from(state, "base64url"), STATE_CONTEXT);
  } catch {
    return "";
  }
}

const STATE_CONTEXT = "mastodon-oauth-state";

/**
 * Mastodon's own "following list" format, as its export writes it and its
 * import reads it. Accts never contain commas or quotes.
 */
export function followingCsv(accts: readonly string[]): string {
  const lines = ["Account address,Show boosts,Notify on new posts,Languages"];
  for (const acct of accts) if (/^[^,"\s@]+@[^,"\s@]+$/.test(acct)) lines.push(`${acct},true,false,`);
  return lines.join("\n") + "\n";
}
