/**
 * The few words the Bluesky bot says on its own (not answers: those come
 * from src/conversation): its profile description, and what a public reply
 * says when the private answer could not be delivered.
 */

/** Bump when the profile text changes, so running bots rewrite it once. */
export const PROFILE_VERSION = 1;

export const PROFILE_DESCRIPTION =
  "🤖 Bot. Je retrouve ici les comptes que vous suiviez sur X, et je peux les suivre pour vous. Écrivez-moi « aide » en message privé.\n" +
  "🤖 Bot. I find the accounts you followed on X that are here, and can follow them for you. Send me “help” in a private message.";

/** The public reply when the answer is private and the person does not accept messages from the bot. */
export function openYourMessages(language: string, botHandle: string): string {
  return language === "fr"
    ? `Ma réponse est privée, mais vous n'acceptez pas mes messages. Suivez @${botHandle}, ou autorisez les messages de tout le monde (Paramètres › Confidentialité › Messages), puis écrivez-moi à nouveau.`
    : `My answer is private, but you don't accept messages from me. Follow @${botHandle}, or allow messages from everyone (Settings › Privacy › Chat), then write to me again.`;
}
