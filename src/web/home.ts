/**
 * The service's front page (`/`): what the bot does and where to write to
 * it, in every language it speaks. The fediverse actor's profile link
 * points here, so a browser following it lands on a page, not on JSON.
 */
import type { RequestHandler } from "express";
import { LOCALES } from "../conversation/i18n/index.ts";
import { html, prose, sendPage } from "./html.ts";

export interface HomeOptions {
  /** `reconnexion@example.org`. */
  fediverseAcct: string;
  /** The Bluesky bot's handle, once it is logged in. */
  blueskyHandle: () => string | undefined;
  defaultLanguage: string;
}

export function homePage(options: HomeOptions): RequestHandler {
  return (req, res, next) => {
    if (req.method !== "GET" || req.path !== "/") return next();
    const locales = Object.values(LOCALES);
    const first = LOCALES[options.defaultLanguage] ?? locales[0]!;
    const ordered = [first, ...locales.filter((l) => l !== first)];
    const bluesky = options.blueskyHandle();
    const accounts = html`<ul><li>Fediverse: <code>@${options.fediverseAcct}</code></li>${bluesky ? html`<li>Bluesky: <code>@${bluesky}</code></li>` : html``}</ul>`;
    const intros = ordered.map((l) => html`<p lang="${l.code}">${prose(l.web.homeIntro)}</p>`);
    const where = ordered.map((l) => l.web.homeWhere).join(" / ");
    sendPage(res, { lang: first.code, title: "Reconnexion", body: html`<h1>Reconnexion</h1>${intros}<p>${where}</p>${accounts}` });
  };
}
