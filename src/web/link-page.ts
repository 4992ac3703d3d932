/**
 * What the pages behind one-time links share: the language a page is shown
 * in, and its layout (a title, then the body).
 */
import type { Request, Response } from "express";
import { LOCALES, type Locale } from "../conversation/i18n/index.ts";
import { personLocale } from "../conversation/language.ts";
import type { Store } from "../store/index.ts";
import { html, sendPage, type SafeHtml } from "./html.ts";

/** The person's saved language, else the one they write in, else the browser's, else `defaultLanguage`. */
export async function linkPageLocale(store: Store, defaultLanguage: string, req: Request, personId: number | undefined): Promise<Locale> {
  const person = personId === undefined ? undefined : await store.people.get(personId);
  return personLocale(person, defaultLanguage, browserLanguage(req));
}

/** The language the browser prefers among ours; none when it names none (or says `*`: any will do). */
export function browserLanguage(req: Request): string | undefined {
  const header = req.headers["accept-language"]?.trim();
  if (!header || header === "*") return undefined;
  return req.acceptsLanguages(...Object.keys(LOCALES)) || undefined;
}

/**
 * Whether the client would rather have a page than a machine answer:
 * browsers list text/html first; ActivityPub servers list it last, if at all.
 */
export function prefersPage(req: Request): boolean {
  return req.accepts(["text/plain", "application/activity+json", "application/ld+json", "application/json", "text/html"]) === "text/html";
}

/** A page titled `title` in `locale`'s language. */
export function sendLinkPage(res: Response, locale: Locale, title: string, body: SafeHtml, status = 200): void {
  sendPage(res, { lang: locale.code, title, status, body: html`<h1>${title}</h1>${body}` });
}
