/** Français. */
import type { Locale, StatusFacts } from "./types.ts";

const platformName = { x: "X", bluesky: "Bluesky", fediverse: "Mastodon (fédivers)" } as const;
const onOff = (b: boolean) => (b ? "activées" : "désactivées");
const onOffM = (b: boolean) => (b ? "activée" : "désactivée");

function status(f: StatusFacts): string {
  const lines = ["Vos comptes :"];
  for (const i of f.identities) {
    const how = i.verifiedBy === "archive" ? " (revendiqué par une archive, non vérifié)" : "";
    lines.push(`• ${platformName[i.platform]} : ${i.handle ? `@${i.handle}` : "(identifiant inconnu)"}${how}`);
  }
  lines.push("", "Les personnes que vous suiviez sur X et qui sont ici :");
  for (const p of ["bluesky", "fediverse"] as const) {
    const c = f.counts[p];
    lines.push(
      c.total === 0
        ? `• ${platformName[p]} : personne pour l’instant`
        : `• ${platformName[p]} : ${c.total} — ${c.pending} à suivre, ${c.followed + c.already_following} suivies, ${c.failed} en échec, ${c.ignored} ignorées`,
    );
  }
  lines.push(
    "",
    `Réglages : langue ${f.languageName ?? "détectée dans vos messages"}, notifications ${onOff(f.notify)}, reconnexion automatique ${onOffM(f.autoReconnect)}, annonce publique de votre arrivée ${onOffM(f.announceMe)}.`,
  );
  return lines.join("\n");
}

export const fr: Locale = {
  code: "fr",
  name: "Français",
  detect: {
    words: [
      "le", "la", "les", "un", "une", "des", "est", "je", "tu", "vous", "mon", "mes", "moi", "quoi", "comment",
      "qui", "merci", "svp", "stp", "salut", "coucou", "peux", "pouvez", "avec", "pour", "et", "pas", "ne", "veux",
      "voudrais", "retrouver", "amis", "marche", "ca", "c'est", "qu'est-ce", "que",
    ],
    characters: /[éèêëàâçùûôîïœ]/i,
  },
  keywords: {
    on: ["oui", "on", "activer", "active"],
    off: ["non", "off", "desactiver", "desactive"],
    all: ["tout", "tous", "toutes"],
    confirm: ["confirmer", "confirme", "oui"],
    bluesky: ["bluesky", "bsky"],
    fediverse: ["mastodon", "fedivers", "fediverse", "fedi"],
    x: ["x", "twitter"],
  },
  commands: {
    help: { words: ["aide", "bonjour", "salut", "coucou", "?"], args: "", summary: "qui je suis, ce que je sais de vous, les commandes" },
    status: { words: ["statut", "etat"], args: "", summary: "vos comptes liés, vos correspondances et vos réglages" },
    list: { words: ["liste", "lister"], args: "[bluesky|mastodon] [page]", summary: "les personnes suivies sur X qui sont sur Bluesky ou Mastodon" },
    ignore: { words: ["ignorer"], args: "@compte", summary: "retirer quelqu’un de vos listes" },
    unignore: { words: ["désignorer", "rétablir"], args: "@compte", summary: "remettre une personne ignorée dans vos listes" },
    link: { words: ["lier"], args: "<code> | @compte", summary: "joindre un autre de vos comptes : `lier @vous@instance` donne un code, envoyez `lier <code>` depuis ce compte" },
    unlink: { words: ["délier"], args: "bluesky|mastodon|x", summary: "détacher un de vos comptes" },
    notify: { words: ["notifications", "notifier"], args: "oui|non", summary: "des messages quand arrivent des personnes suivies sur X" },
    language: { words: ["langue"], args: "fr|en", summary: "la langue de mes réponses" },
    stop: { words: ["stop", "arrêt", "arrêter"], args: "", summary: "je ne vous écris plus jamais le premier" },
    forget: { words: ["oublier", "oublie-moi"], args: "", summary: "effacer tout ce que je sais de vous (demande confirmation)" },
  },
  m: {
    platformName,
    stateName: {
      pending: "à suivre",
      followed: "suivi",
      already_following: "déjà suivi",
      failed: "échec",
      ignored: "ignoré",
    },
    intro:
      "Bonjour ! Je suis reconnexion : je retrouve les personnes que vous suiviez sur X et qui sont maintenant sur Bluesky ou Mastodon, et je vous préviens quand d’autres arrivent.",
    welcome: (platform) =>
      `Bonjour ! Je suis reconnexion : je retrouve les personnes que vous suiviez sur X et qui sont maintenant sur Bluesky ou Mastodon. Je ne connais pas encore ce compte ${platformName[platform]}. Pour vous faire connaître : demandez un code à la plateforme d’inscription et envoyez-le-moi en message privé sous la forme \`lier <code>\`, ou, si je connais déjà un autre de vos comptes, envoyez \`lier @ce-compte\` depuis celui-là.`,
    aboutYou: ({ platforms, matches }) => {
      const known = platforms.map((p) => platformName[p]).join(", ");
      const found = matches.map((m) => `${m.total} sur ${platformName[m.platform]}`).join(", ");
      return `Je connais vos comptes sur ${known}. Personnes suivies sur X retrouvées : ${found}.`;
    },
    commandsTitle: "Commandes :",
    helpLine: (usage, summary) => `• ${usage} : ${summary}`,
    publicHelp: (words) =>
      `Bonjour ! Je suis reconnexion : je retrouve ici les personnes que vous suiviez sur X. Écrivez-moi en message privé : ${words.join(", ")}.`,
    sentPrivately: (platform) =>
      platform === "bluesky"
        ? "Je vous ai répondu en message privé. Rien reçu ? Suivez-moi, ou autorisez les messages de tout le monde, puis redemandez."
        : "Je vous ai répondu en message privé.",
    hint: "Je n’ai pas compris. Envoyez `aide` pour voir ce que je sais faire.",
    slowDown: "Cela fait beaucoup de messages : doucement, s’il vous plaît. Je vous répondrai de nouveau dans une minute.",
    tooLong: (max) => `Votre message est trop long pour moi (plus de ${max} caractères). Envoyez une commande courte, par exemple \`aide\`.`,
    usage: (usage) => `Utilisation : ${usage}`,
    status,
    listTitle: (platform, page, pages, total) =>
      `Personnes suivies sur X présentes sur ${platformName[platform]} (${total}, page ${page} sur ${pages}) :`,
    listEntry: (e) =>
      `${e.n}. @${e.handle}${e.xUsername ? ` (X : @${e.xUsername})` : ""} — ${fr.m.stateName[e.state]}${e.url ? ` ${e.url}` : ""}`,
    listEmpty: (platform) =>
      `Personne parmi vos abonnements X n’est encore sur ${platformName[platform]}. Je vous préviendrai dès que quelqu’un arrive.`,
    listNext: (command) => `Page suivante : \`${command}\``,
    ignored: (handle) => `@${handle} est retiré de vos listes et reconnexions.`,
    unignored: (handle) => `@${handle} est de retour dans vos listes.`,
    noMatchNamed: (handle) => `@${handle} ne fait pas partie des personnes que vous suiviez sur X.`,
    notIgnored: (handle) => `@${handle} n’était pas ignoré.`,
    alreadyFollowed: (handle) => `Vous suivez déjà @${handle}.`,
    linkCodeCreated: ({ code, handle, platform, minutes, command }) =>
      `Votre code : ${code}\nEnvoyez-moi \`${command} ${code}\` depuis @${handle} sur ${platformName[platform]} dans les ${minutes} minutes. Il ne sert qu’une fois, et seulement depuis ce compte.`,
    linkXRefused:
      "Un compte X ne peut pas être lié par son nom : n’importe qui pourrait le taper. Il vient de la plateforme d’inscription ou de votre archive X.",
    linkSameAccount: "C’est le compte depuis lequel vous m’écrivez.",
    linkAlreadyYours: (handle) => `@${handle} est déjà lié à vous.`,
    linkPlatformTaken: (platform, handle, unlinkCommand) =>
      `Vous avez déjà un compte ${platformName[platform]} lié (@${handle}). Envoyez d’abord \`${unlinkCommand}\` pour le remplacer.`,
    linkTooManyCodes: "Vous avez demandé beaucoup de codes en peu de temps. Réessayez dans une heure.",
    linkCodeInvalid: (minutes) =>
      `Ce code ne fonctionne pas. Un code sert une seule fois, dans les ${minutes} minutes, depuis le compte pour lequel il a été créé : demandez-en un nouveau si besoin.`,
    linkTooManyFailures: "Trop de codes erronés. Attendez une heure avant de réessayer.",
    linkCodeInPublic:
      "Ne publiez jamais un code ! Je l’ai rendu inutilisable. Demandez-en un nouveau et envoyez-le-moi en message privé.",
    linked: (platforms) =>
      `C’est fait : vos comptes sont réunis (${platforms.map((p) => platformName[p]).join(", ")}). Envoyez \`statut\` pour voir ce que j’ai trouvé.`,
    linkAlreadyDone: "Ces comptes sont déjà réunis.",
    linkAccountTaken: "Ce compte appartient déjà à quelqu’un d’autre ici : je ne peux pas le lier.",
    unlinked: (platform) => `Votre compte ${platformName[platform]} est détaché.`,
    unlinkNothing: (platform) => `Vous n’avez aucun compte ${platformName[platform]} lié.`,
    unlinkLastIdentity: (forgetCommand) =>
      `C’est le seul compte que je vous connais. Pour tout effacer, envoyez plutôt \`${forgetCommand}\`.`,
    notifyOn: "Notifications activées : je vous préviendrai quand des personnes suivies sur X arrivent.",
    notifyOff: "Notifications désactivées : je ne vous écrirai plus au sujet des nouvelles arrivées.",
    languageSet: "Désormais, je vous réponds en français.",
    languageUnknown: (available) => `Je parle : ${available.join(", ")}.`,
    stopped:
      "Entendu : je ne vous écrirai plus jamais le premier (notifications et reconnexion automatique désactivées). Vous pouvez toujours me demander ce que vous voulez.",
    forgetAsk: (confirmCommand, minutes) =>
      `Cela efface tout ce que je sais de vous : comptes, correspondances, réglages. C’est irréversible. Pour continuer, envoyez \`${confirmCommand}\` dans les ${minutes} minutes.`,
    forgetDone: "C’est fait : j’ai effacé tout ce que je savais de vous. Au revoir !",
    forgetNoRequest: (forgetCommand) => `Rien à confirmer : envoyez d’abord \`${forgetCommand}\`.`,
    forgetUnknown: "Je ne sais rien de vous : il n’y a rien à effacer.",
  },
};
