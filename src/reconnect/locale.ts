/** The locale a person's reports are written in: their saved language, else the default. */
import type { Config } from "../config.ts";
import { findLocale, LOCALES, type Locale } from "../conversation/i18n/index.ts";
import type { Store } from "../store/index.ts";

export async function localeFor(store: Store, personId: number, config: Config): Promise<Locale> {
  const person = await store.people.get(personId);
  return findLocale(person?.language) ?? findLocale(config.defaultLanguage) ?? LOCALES.en!;
}
