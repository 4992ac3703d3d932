/**
 * Which language to answer in: the person's saved setting, else the one the
 * message is written in, else the configured default.
 *
 * Detection is a word-list heuristic over the locale files (command words,
 * keywords, common words, telltale letters). Statistical detectors measured
 * poorly on what people send a bot: franc-min called "statut" English and
 * "je voudrais retrouver mes amis" English, and gives up on single words.
 */
import { LOCALES, findLocale, type Locale } from "./i18n/index.ts";
import { commandWord } from "./parse.ts";
import type { CommandMatch } from "./registry.ts";

/** Every word that belongs to a locale, folded. */
function vocabulary(locale: Locale): Set<string> {
  const words = [
    ...locale.detect.words,
    ...Object.values(locale.commands).flatMap((c) => c.words),
    ...Object.values(locale.keywords).flat(),
  ];
  return new Set(words.map(commandWord));
}

const VOCABULARIES = new Map<Locale, Set<string>>();
function vocabularyOf(locale: Locale): Set<string> {
  let v = VOCABULARIES.get(locale);
  if (!v) VOCABULARIES.set(locale, (v = vocabulary(locale)));
  return v;
}

/**
 * The language a message is written in, or undefined when it cannot tell.
 * @param match the command the first word called, if any: a word of one language only decides
 */
export function detectLanguage(
  tokens: readonly string[],
  match?: CommandMatch,
  locales: readonly Locale[] = Object.values(LOCALES),
): string | undefined {
  if (match?.languages.length === 1) return match.languages[0];
  return confidentLanguage(tokens, 1, locales);
}

/**
 * The language at least `evidence` words (or characters) of the message
 * point to, and more than to any other — what is worth remembering of a
 * person: one word (`hello`, `ignore` in a French sentence) is not.
 */
export function confidentLanguage(tokens: readonly string[], evidence = 2, locales: readonly Locale[] = Object.values(LOCALES)): string | undefined {
  const scores = locales.map((locale) => {
    const vocab = vocabularyOf(locale);
    let score = 0;
    for (const token of tokens) {
      const word = commandWord(token);
      // A word every locale shares (`stop`, `bluesky`) tells nothing.
      if (vocab.has(word) && !locales.every((l) => vocabularyOf(l).has(word))) score += 1;
      if (locale.detect.characters?.test(token)) score += 1;
    }
    return { code: locale.code, score };
  });
  scores.sort((a, b) => b.score - a.score);
  const [best, second] = scores;
  if (!best || best.score < evidence || (second && second.score === best.score)) return undefined;
  return best.code;
}

/** Saved setting, else detected, else the default (which must be a locale). */
export function chooseLocale(saved: string | null | undefined, detected: string | null | undefined, fallback: string): Locale {
  return findLocale(saved) ?? findLocale(detected) ?? findLocale(fallback) ?? LOCALES.en!;
}

/**
 * The language to write to a person in, unprompted (reports, digests,
 * pages): the one they chose, else the one they last wrote in, else
 * `otherwise` (a browser's language), else the default.
 */
export function personLocale(
  person: { language: string | null; writtenLanguage: string | null } | undefined,
  fallback: string,
  otherwise?: string,
): Locale {
  return findLocale(person?.language) ?? findLocale(person?.writtenLanguage) ?? findLocale(otherwise) ?? findLocale(fallback) ?? LOCALES.en!;
}
