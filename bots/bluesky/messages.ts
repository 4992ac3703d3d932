/**
 * The few words the Bluesky bot says on its own (not answers: those come
 * from src/conversation): its profile description (both languages, one
 * text), and what a public reply says when the private answer could not be
 * delivered (from the locale of the answer, or, for the bot's own trouble,
 * here in both languages).
 */
import { findLocale, LOCALES } from "../../src/conversation/i18n/index.ts";

/** Bump when the profile text changes, so running bots rewrite it once. */
export const PROFILE_VERSION = 1;

export const PROFILE_DESCRIPTION =
  "🤖 Bot. Je retrouve ici les comptes que vous suiviez sur X, et je peux les suivre pour vous. Écrivez-moi « aide » en message privé.\n" +
  "🤖 Bot. I find the accounts you followed on X that are here, and can follow them for you. Send me “help” in a private message.";

/** The public reply when the answer is private and the person does not accept messages from the bot. */
export function openYourMessages(language: string, botHandle: string): string {
  return (findLocale(language) ?? LOCALES.en!).m.openYourMessages(botHandle);
}

/**
 * The public reply when the answer is private and the bot cannot send direct
 * messages at all (its app password has no access to them): nothing the
 * person can do, so it only says that the answer could not be given.
 */
export function cannotWritePrivately(language: string): string {
  return language === "fr"
    ? "Ma réponse est privée, mais je ne peux pas envoyer de messages privés pour le moment. Réessayez plus tard."
    : "My answer is private, but I can't send private messages at the moment. Please try again later.";
}
