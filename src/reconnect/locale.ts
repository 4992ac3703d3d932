/**
 * The locale the bot writes to a person in, unprompted (reports, digests):
 * their saved language, else the one they last wrote in, else the default.
 */
import type { Config } from "../config.ts";
import type { Locale } from "../conversation/i18n/index.ts";
import { personLocale } from "../conversation/language.ts";
import type { Store } from "../store/index.ts";

export async function localeFor(store: Store, personId: number, config: Pick<Config, "defaultLanguage">): Promise<Locale> {
  return personLocale(await store.people.get(personId), config.defaultLanguage);
}
