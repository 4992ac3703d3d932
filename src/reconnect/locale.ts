/** The locale the bot writes to a person in, unprompted (reports, digests): their saved language, else the default. */
import type { Config } from "../config.ts";
import { findLocale, LOCALES, type Locale } from "../conversation/i18n/index.ts";
import type { Store } from "../store/index.ts";

export async function localeFor(store: Store, personId: number, config: Pick<Config, "defaultLanguage">): Promise<Locale> {
  const person = await store.people.get(personId);
  return findLocale(person?.language) ?? findLocale(config.defaultLanguage) ?? LOCALES.en!;
}
