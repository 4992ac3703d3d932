/**
 * The locales the bot speaks. A new language is one file implementing
 * `Locale` and one line in `LOCALES`: every word and sentence lives there.
 */
import { en } from "./en.ts";
import { fr } from "./fr.ts";
import type { Locale } from "./types.ts";

export type { AnnounceMessages, CommandText, DigestPart, Keyword, ListEntryFacts, Locale, Messages, ReconnectMessages, StatusFacts, WebMessages } from "./types.ts";

/** Every locale, by code. */
export const LOCALES: Readonly<Record<string, Locale>> = Object.freeze({ en, fr });

/** The locale for `code`, if the bot speaks it. */
export function findLocale(code: string | null | undefined): Locale | undefined {
  return code ? LOCALES[code.toLowerCase()] : undefined;
}

/** The codes of every locale (`["en", "fr"]`). */
export function localeCodes(): string[] {
  return Object.keys(LOCALES).sort();
}
