/** Français. */
import type { JobCounts } from "../../store/index.ts";
import type { ArchiveProblem } from "../../archive/problem.ts";
import { LANGUAGES, type Locale, type StatusFacts } from "./types.ts";

const platformName = { x: "X", bluesky: "Bluesky", fediverse: "Mastodon (fédivers)" } as const;
const onOff = (b: boolean) => (b ? "activées" : "désactivées");
const onOffM = (b: boolean) => (b ? "activée" : "désactivée");

function status(f: StatusFacts): string {
  const lines = ["Vos comptes :"];
  for (const i of f.identities) {
    const how = i.verifiedBy === "archive" ? " (revendiqué par une archive, non vérifié)" : "";
    lines.push(`• ${platformName[i.platform]} : ${i.handle ? `@${i.handle}` : "(identifiant inconnu)"}${how}`);
  }
  if (f.upload) {
    const n = f.upload.followings;
    lines.push(`• L’archive X que vous avez déposée${f.upload.xUsername ? ` (@${f.upload.xUsername})` : ""} : ${n} ${n > 1 ? "comptes suivis" : "compte suivi"}`);
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

/** Ce qui ne va pas dans une archive déposée, pour la personne qui l’a envoyée. */
function archiveProblem(problem: ArchiveProblem | undefined, file: string | undefined, line: number | undefined): string {
  const what = file ?? "Ce que vous avez envoyé";
  const where = line === undefined ? what : `${what} (ligne ${line})`;
  switch (problem?.kind) {
    case "not-archive":
      return `${what} n’est pas une archive X : choisissez le .zip envoyé par X, ou ses fichiers data/account.js et data/following.js.`;
    case "no-account":
      return "Il manque data/account.js : c’est lui qui dit à qui est l’archive. Choisissez-le aussi.";
    case "bad-account":
      return "data/account.js ne désigne aucun compte X valide.";
    case "other-account":
      return `C’est l’archive d’un autre compte X que le vôtre (${problem.yours}) : déposez l’archive de ce compte-là.`;
    case "too-large":
      return `${what} dépasse ${problem.mb} Mo — bien plus que tout fichier de données d’une archive X.`;
    case "too-large-in-all":
      return `${what} contient des fichiers de données (account.js, following.js) de plus de ${problem.mb} Mo en tout une fois décompressés — bien plus que toute archive X.`;
    case "zip-bomb":
      return `${what} est compressé bien au-delà de tout vrai fichier d’archive.`;
    case "too-many-parts":
      return `${what} contient plus de ${problem.max} parties d’un même fichier de données (following-part1.js, following-part2.js…) — bien plus que toute archive X.`;
    case "damaged":
      return `${where} est abîmé ou incomplet : téléchargez à nouveau votre archive depuis X.`;
    case "bad-content":
    case undefined:
      return `${where} n’est pas écrit comme X écrit les fichiers de ses archives.`;
  }
}

const reasonNames: Record<string, string> = {
  not_found: "introuvable",
  gone: "compte supprimé ou suspendu",
  blocked: "blocage",
  failed: "erreur",
  requested: "demande en attente",
};
/** Les détails qui méritent d’être distingués de leur issue (`failed: follow_limit`). */
const reasonDetails: Record<string, string> = {
  follow_limit: "limite d’abonnements de votre serveur atteinte",
  self: "c’est votre propre compte",
  moved: "le compte a déménagé",
};
/** `failed: follow_limit` → le nom du détail, sinon celui de l’issue (`gone: suspended` → `compte supprimé ou suspendu`). */
const reasonText = (reason: string) => {
  const [outcome, detail] = reason.split(":").map((s) => s.trim());
  return (detail && reasonDetails[detail]) || reasonNames[outcome!] || reason;
};
const plural = (n: number, one: string, many: string) => `${n} ${n > 1 ? many : one}`;
const accounts = (n: number) => plural(n, "compte", "comptes");

function tally(c: JobCounts): string {
  const parts = [plural(c.followed, "suivi", "suivis")];
  if (c.requested) parts.push(`${c.requested} en attente d’acceptation (comptes verrouillés)`);
  parts.push(plural(c.already_following, "déjà suivi", "déjà suivis"));
  const missing = c.not_found + c.gone;
  if (missing) parts.push(plural(missing, "introuvable", "introuvables"));
  if (c.blocked) parts.push(plural(c.blocked, "bloqué", "bloqués"));
  if (c.failed) parts.push(`${c.failed} en échec`);
  return parts.join(", ");
}

const jobState = {
  queued: "en file d’attente",
  running: "en cours",
  waiting: "en pause (limites du réseau)",
  retrying: "en pause : le serveur n’a pas répondu, je réessaierai",
  needs_authorization: "en attente de votre autorisation",
  done: "terminée",
  cancelled: "annulée",
} as const;

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
    failed: ["échecs", "échec", "échoués"],
  },
  commands: {
    help: { words: ["aide", "bonjour", "salut", "coucou", "?"], args: "", summary: "qui je suis, ce que je sais de vous, les commandes" },
    status: { words: ["statut", "etat"], args: "", summary: "vos comptes liés, vos correspondances et vos réglages" },
    list: { words: ["liste", "lister"], args: "[échecs] [bluesky|mastodon] [page]", summary: "les personnes suivies sur X qui sont sur Bluesky ou Mastodon (`échecs` : celles que je n’ai pas pu suivre, et pourquoi)" },
    ignore: { words: ["ignorer"], args: "@compte", summary: "retirer quelqu’un de vos listes" },
    unignore: { words: ["désignorer", "rétablir"], args: "@compte", summary: "remettre une personne ignorée dans vos listes" },
    link: { words: ["lier"], args: "<code> | @compte", summary: "joindre un autre de vos comptes : `lier @vous@instance` donne un code, envoyez `lier <code>` depuis ce compte" },
    unlink: { words: ["délier"], args: "bluesky|mastodon|x", summary: "détacher un de vos comptes" },
    notify: { words: ["notifications", "notifier"], args: "oui|non", summary: "des messages quand arrivent des personnes suivies sur X" },
    language: { words: ["langue"], args: LANGUAGES, summary: "la langue de mes réponses" },
    reconnect: { words: ["reconnecter", "suivre"], args: "[tout|N|@compte…] [bluesky|mastodon]", summary: "je les suis pour vous depuis votre compte : tous, les N premiers, ou ceux que vous nommez" },
    auto: { words: ["auto"], args: "oui|non", summary: "suivre automatiquement les personnes que vous suiviez sur X quand elles arrivent" },
    stop: { words: ["stop", "arrêt", "arrêter"], args: "", summary: "je ne vous écris plus jamais le premier" },
    forget: { words: ["oublier", "oublie-moi"], args: "[confirmer]", summary: "effacer tout ce que je sais de vous (demande confirmation)" },
    archive: { words: ["archive"], args: "", summary: "un lien privé pour déposer votre archive X : j’y retrouve qui vous suiviez" },
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
      `Bonjour ! Je suis reconnexion : je retrouve les personnes que vous suiviez sur X et qui sont maintenant sur Bluesky ou Mastodon. Je ne connais pas encore ce compte ${platformName[platform]}. Pour vous faire connaître : envoyez-moi \`archive\` pour déposer votre archive X, ou demandez un code à la plateforme d’inscription et envoyez-le-moi en message privé sous la forme \`lier <code>\`, ou, si je connais déjà un autre de vos comptes, envoyez \`lier @ce-compte\` depuis celui-là.`,
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
    couldNotAnswer: "Désolé, je n’ai pas pu répondre à ce message : un problème de mon côté. Renvoyez-le plus tard, s’il vous plaît.",
    openYourMessages: (botHandle) =>
      `Ma réponse est privée, mais vous n’acceptez pas mes messages. Suivez @${botHandle}, ou autorisez les messages de tout le monde dans les paramètres de vos discussions, puis écrivez-moi à nouveau.`,
    slowDown: "Cela fait beaucoup de messages : doucement, s’il vous plaît. Je vous répondrai de nouveau dans une minute.",
    tooLong: (max) => `Votre message est trop long pour moi (plus de ${max} caractères). Envoyez une commande courte, par exemple \`aide\`.`,
    usage: (usage) => `Utilisation : ${usage}`,
    status,
    listTitle: (platform, page, pages, total) =>
      `Personnes suivies sur X présentes sur ${platformName[platform]} (${total}, page ${page} sur ${pages}) :`,
    listEntry: (e) =>
      `${e.n}. @${e.handle}${e.xUsername ? ` (X : @${e.xUsername})` : ""} — ${fr.m.stateName[e.state]}${e.reason ? ` (${reasonText(e.reason)})` : ""}${e.url ? ` ${e.url}` : ""}`,
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
      "Un compte X ne peut pas être lié par son nom : n’importe qui pourrait le taper. Il ne vient que de la plateforme d’inscription — ou envoyez `archive` pour déposer votre archive X : j’y retrouve qui vous suiviez.",
    archiveLink: ({ url, hours }) =>
      `Déposez votre archive X ici — ses fichiers data/account.js et data/following.js suffisent (ou le .zip entier envoyé par X) : ${url}\nCe lien n’est qu’à vous et vaut ${hours} heures. Je n’y lis que qui vous suiviez.`,
    archiveTooManyLinks: "Vous avez demandé plusieurs liens de dépôt cette heure-ci : servez-vous du dernier, ou réessayez plus tard.",
    linkSameAccount: "C’est le compte depuis lequel vous m’écrivez.",
    linkAlreadyYours: (handle) => `@${handle} est déjà l’un de vos comptes liés.`,
    linkPlatformTaken: (platform, handle, unlinkCommand) =>
      `Vous avez déjà un compte ${platformName[platform]} lié (@${handle}). Envoyez d’abord \`${unlinkCommand}\` pour le remplacer.`,
    linkSamePlatform: (platform, handle) =>
      `Vous m’écrivez depuis un compte ${platformName[platform]}, et chacun a ici un seul compte par réseau. Pour utiliser @${handle} à la place, écrivez-moi depuis celui-ci ; pour lier un compte sur l’autre réseau, nommez celui-là.`,
    linkOwnerPlatformTaken: (platform, handle, unlinkCommand) =>
      `Ce code vient d’un compte qui a déjà un compte ${platformName[platform]} lié (@${handle}), et chacun n’en a qu’un par réseau. Pour lier celui-ci à la place, envoyez d’abord \`${unlinkCommand}\` depuis ce compte-là, puis demandez un nouveau code.`,
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
    unlinkedUpload: "L’archive X que vous aviez déposée est effacée, avec les comptes qu’elle avait trouvés et dont vous n’aviez rien fait.",
    unlinkStoppedJobs: (count) =>
      `${count === 1 ? "La reconnexion en cours qui en dépendait est arrêtée" : `Les ${count} reconnexions en cours qui en dépendaient sont arrêtées`} ; les abonnements déjà faits restent.`,
    unlinkLastReachable: (forgetCommand) =>
      `C’est le dernier compte sur lequel je peux vous écrire : sans lui, je garderais votre compte X et ses abonnements sans que vous puissiez me joindre. Pour tout effacer plutôt, envoyez \`${forgetCommand}\`.`,
    unlinkNothing: (platform) => `Vous n’avez aucun compte ${platformName[platform]} lié.`,
    unlinkLastIdentity: (forgetCommand) =>
      `C’est le seul compte que je vous connais. Pour tout effacer, envoyez plutôt \`${forgetCommand}\`.`,
    notifyOn: "Notifications activées : je vous préviendrai quand des personnes suivies sur X arrivent.",
    notifyOff: "Notifications désactivées : je ne vous écrirai plus au sujet des nouvelles arrivées.",
    languageSet: "Désormais, je vous réponds en français.",
    languageUnknown: (available) => `Je parle : ${available.join(", ")}.`,
    stopped:
      "Entendu : je ne vous écrirai plus jamais le premier (notifications, reconnexion automatique et annonce publique de votre arrivée désactivées). Vous pouvez toujours me demander ce que vous voulez.",
    stoppedJobs: (count, reconnectCommand) =>
      `${count === 1 ? "Votre reconnexion en cours est arrêtée" : `Vos ${count} reconnexions en cours sont arrêtées`} aussi ; les abonnements déjà faits restent. \`${reconnectCommand}\` ${count === 1 ? "la" : "les"} relance quand vous voulez.`,
    forgetAsk: (confirmCommand, minutes) =>
      `Cela efface tout ce que je sais de vous : comptes, correspondances, réglages. C’est irréversible. Pour continuer, envoyez \`${confirmCommand}\` dans les ${minutes} minutes.`,
    forgetDone: "C’est fait : j’ai effacé tout ce que je savais de vous. Au revoir !",
    forgetAppPassword:
      "Vous m’aviez donné un mot de passe d’application Bluesky : j’ai fermé sa session. Pour plus de sûreté, supprimez le mot de passe lui-même dans Bluesky (Paramètres → Confidentialité et sécurité → Mots de passe d’application).",
    forgetNoRequest: (forgetCommand) => `Rien à confirmer : envoyez d’abord \`${forgetCommand}\`.`,
    forgetUnknown: "Je ne sais rien de vous : il n’y a rien à effacer.",
  },
  r: {
    queued: (platform, total, added) =>
      `C’est parti : je suis ${accounts(total)} pour vous sur ${platformName[platform]}${added < total ? ` (dont ${plural(added, "ajouté", "ajoutés")} à l’instant)` : ""}. Vous recevrez un bilan à la fin ; \`statut\` montre l’avancement.`,
    nothing: (platform) => `Personne à suivre sur ${platformName[platform]} : toutes les personnes que vous suiviez sur X et qui y sont sont déjà suivies ou ignorées.`,
    noFailures: (platform) => `Aucune reconnexion en échec sur ${platformName[platform]}.`,
    noAccount: (platform, linkCommand) =>
      `Je ne connais pas votre compte ${platformName[platform]} : je ne peux suivre personne depuis celui-ci. Envoyez d’abord \`${linkCommand}\` pour le lier.`,
    unknownNames: (handles) => `Pas parmi les personnes que vous suiviez sur X : ${handles.map((h) => `@${h}`).join(", ")}.`,
    needsAuthorization: ({ platform, url, hours, total, exportUrl }) =>
      [
        `Pour suivre ${accounts(total)} pour vous sur ${platformName[platform]}, j’ai besoin de votre autorisation, donnée sur la page de votre serveur (jamais par message). Ouvrez ce lien privé (valable ${hours} h, une fois) : ${url}`,
        "Votre demande est enregistrée : elle démarre dès que vous avez autorisé.",
        ...(exportUrl
          ? [`Vous préférez le faire vous-même ? Ce fichier s’importe dans Mastodon (Préférences → Import et export → Importer, « Liste d’abonnements ») : ${exportUrl}`]
          : []),
      ].join("\n"),
    authorized: (platform, resumed) =>
      `Merci : votre compte ${platformName[platform]} est autorisé.${resumed ? " Votre reconnexion démarre ; je vous enverrai un bilan." : " Envoyez `reconnecter` quand vous voulez que je suive des personnes pour vous."}`,
    authorizationExpired: (platform, url) =>
      `Mon autorisation d’agir sur votre compte ${platformName[platform]} a expiré ou a été révoquée : votre reconnexion est en pause. Pour la reprendre, autorisez à nouveau ici (lien privé) : ${url}`,
    progress: (platform, c) => `Reconnexion sur ${platformName[platform]} : ${c.total - c.todo} sur ${c.total} traités — ${tally(c)}.`,
    summary: (platform, c, listFailed) => {
      const problems = c.not_found + c.gone + c.blocked + c.failed;
      return `Reconnexion sur ${platformName[platform]} terminée : ${tally(c)}.${problems ? ` Pour voir ceux qui n’ont pas marché : \`${listFailed}\`.` : ""}`;
    },
    jobLine: (platform, state, c, waitUntil) =>
      `• Reconnexion sur ${platformName[platform]} : ${jobState[state]}${waitUntil && (state === "waiting" || state === "retrying") ? ` (reprise à ${waitUntil.toISOString().slice(11, 16)} UTC)` : ""} — ${c.total - c.todo}/${c.total} : ${tally(c)}`,
    autoOn: (platforms) =>
      `Reconnexion automatique activée : quand des personnes que vous suiviez sur X arrivent sur ${platforms.map((p) => platformName[p]).join(" ou ")}, je les suis pour vous.`,
    autoOnNeedsAuthorization: (links) =>
      [
        "Reconnexion automatique activée. Il me faut votre autorisation pour suivre depuis votre compte ; autorisez ici (liens privés, valables une fois) :",
        ...links.map((l) => `• ${platformName[l.platform]} : ${l.url}`),
      ].join("\n"),
    autoOff: "Reconnexion automatique désactivée : je ne suis des personnes que quand vous le demandez.",
  },
  a: {
    digest: ({ total, parts, reconnectCommand, listCommand, notifyOffCommand }) =>
      [
        `${total === 1 ? "Une personne que vous suiviez sur X vient d’arriver" : `${total} personnes que vous suiviez sur X viennent d’arriver`} :`,
        ...parts.map((p) => `• ${platformName[p.platform]} : ${p.handles.map((h) => `@${h}`).join(", ")}${p.more ? ` et ${p.more} autre${p.more > 1 ? "s" : ""}` : ""}`),
        `Envoyez \`${reconnectCommand}\` et je ${total === 1 ? "la" : "les"} suis pour vous, ou \`${listCommand}\` pour voir qui. (Pour ne plus recevoir ces messages : \`${notifyOffCommand}\`.)`,
      ].join("\n"),
    publicPost: ({ platform, count, named }) => {
      const names = named.map((h) => `@${h}`);
      const list = names.length > 1 ? `${names.slice(0, -1).join(", ")} et ${names.at(-1)}` : (names[0] ?? "");
      const welcome =
        count === 1
          ? list ? `Bienvenue à ${list}, arrivé·e de X sur ${platformName[platform]} !` : `Quelqu’un vient d’arriver de X sur ${platformName[platform]} : bienvenue !`
          : `Bienvenue aux ${count} personnes arrivées de X sur ${platformName[platform]}${list ? `, dont ${list}` : ""} !`;
      return `${welcome} Vous aussi avez quitté X ? Écrivez-moi : je vous dis qui, parmi vos abonnements là-bas, est ici, et je peux les suivre pour vous.`;
    },
  },
  web: {
    title: "reconnexion — autoriser votre compte",
    homeIntro: "Je retrouve les comptes que vous suiviez sur X et qui sont maintenant sur le fédivers (Mastodon…) ou Bluesky, et je peux les suivre à votre place. Tout se passe en messages privés : envoyez-moi `aide`.",
    homeWhere: "Écrivez-moi à :",

    notFoundTitle: "Rien ici",
    notFound: "Il n’y a rien à cette adresse. La page d’accueil dit ce que fait reconnexion et où lui écrire.",
    errorTitle: "Erreur",
    badRequest: "Cette requête n’a pas pu être lue (trop grande, ou mal formée).",
    internalError: "Un problème de notre côté : réessayez dans un moment.",
    blueskyOAuthTitle: "Autorisation Bluesky",
    oauthProblem: {
      declined: "Vous avez refusé l’autorisation. Rien n’a été modifié. Vous pouvez recommencer depuis le bot quand vous voulez.",
      expired: "Ce lien d’autorisation a expiré ou a déjà servi. Demandez un nouveau lien au bot.",
      failed: "Bluesky n’a pas pu terminer l’autorisation. Recommencez depuis le bot, s’il vous plaît.",
      internal: "Un problème est survenu chez nous lors de l’enregistrement de votre autorisation. Recommencez depuis le bot dans un moment.",
    },
    linkInvalid: "Ce lien a expiré ou a déjà servi. Redemandez au bot : envoyez-lui `reconnecter` en message privé.",
    blueskyIntro: (handle) => `Autorisez reconnexion à suivre, depuis @${handle}, les personnes que vous suiviez sur X. Il ne peut que créer des abonnements ; vous pouvez révoquer l’accès à tout moment.`,
    blueskyOAuthButton: "Se connecter avec Bluesky",
    appPasswordTitle: "Ou utilisez un mot de passe d’application",
    appPasswordHelp: "Créez-en un dans Bluesky : Paramètres → Confidentialité et sécurité → Mots de passe d’application. Jamais votre mot de passe principal.",
    appPasswordLabel: "Mot de passe d’application (xxxx-xxxx-xxxx-xxxx)",
    appPasswordSubmit: "Autoriser",
    appPasswordProblem: {
      not_app_password: "Ce n’est pas un mot de passe d’application : il a la forme xxxx-xxxx-xxxx-xxxx. Créez-en un dans Bluesky, et ne donnez jamais votre mot de passe principal.",
      wrong_password: "Bluesky n’a pas accepté ce mot de passe d’application pour ce compte. Vérifiez-le (format xxxx-xxxx-xxxx-xxxx), ou créez-en un nouveau.",
      unknown_account: "Bluesky ne connaît plus ce compte. Redemandez au bot depuis votre compte actuel.",
      account_unavailable: "Ce compte Bluesky est suspendu ou désactivé.",
      rate_limited: "Bluesky signale trop de tentatives. Attendez quelques minutes, puis réessayez.",
      unreachable: "Votre serveur Bluesky n’a pas pu être joint. Réessayez dans un moment.",
    },
    appPasswordTooManyTries: (command) => `Trop de mots de passe d’application refusés sur ce lien. Demandez un nouveau lien au bot : envoyez-lui \`${command}\` en message privé.`,
    mastodonIntro: (acct, instance) => `Autorisez reconnexion à suivre, depuis @${acct}, les personnes que vous suiviez sur X. Vous l’autoriserez sur ${instance} ; il ne demande qu’à lire et créer des abonnements.`,
    mastodonButton: (instance) => `Autoriser sur ${instance}`,
    wrongAccount: (expected) => `Vous avez autorisé un autre compte. Connectez-vous en tant que @${expected} et réessayez.`,
    failed: "L’autorisation a échoué. Réessayez dans un instant.",
    doneTitle: "C’est fait",
    done: (platform) => `Votre compte ${platformName[platform]} est autorisé. Vous pouvez fermer cette page : le bot va vous écrire.`,
    exportTitle: "Votre liste d’abonnements pour Mastodon",
    exportIntro: (n) => `${n > 1 ? `${n} comptes que vous suiviez sur X sont` : `${n} compte que vous suiviez sur X est`} sur le fédivers, pas encore suivi${n > 1 ? "s" : ""} d’ici. Téléchargez le fichier, puis dans Mastodon : Préférences → Import et export → Importer, type « Liste d’abonnements ». Ce lien ne sert qu’une fois.`,
    exportButton: "Télécharger following_accounts.csv",
    exportNothing: "Tous les comptes que vous suiviez sur X et qui sont sur le fédivers sont déjà suivis, ou n’ont pas pu l’être : il ne reste rien à importer.",
    exportCapped: (shown, total, limit) => `Le fichier contient les ${shown.toLocaleString("fr")} plus récents des ${total.toLocaleString("fr")} : Mastodon n’en importe pas plus à la fois (il refuse tout le fichier s’il dépasse les ${limit.toLocaleString("fr")} abonnements qu’il permet, ceux que vous avez déjà compris). Une fois ceux-ci suivis, redemandez au bot pour le reste.`,
    archiveTitle: "Votre archive X",
    archiveIntro: "Choisissez les fichiers data/account.js et data/following.js de votre archive X (Paramètres → Votre compte → Télécharger une archive de vos données), ou le .zip entier s’il est petit. reconnexion n’y lit que qui vous suiviez, et ne garde rien d’autre.",
    archiveLabel: "Archive (.zip) ou ses fichiers de données (.js)",
    archiveButton: "Déposer",
    archiveLinkInvalid: (command) => `Ce lien a expiré ou a déjà servi. Redemandez-le au bot : envoyez-lui \`${command}\` en message privé.`,
    archiveNothing: "Aucune archive n’accompagnait le formulaire : choisissez le .zip, ou les fichiers data/account.js et data/following.js.",
    archiveTooLarge: (mb) => `C’est plus de ${mb} Mo. Déposez seulement les fichiers data/account.js et data/following.js pris dans l’archive.`,
    archiveRefused: (problem, file, line) => `${archiveProblem(problem, file, line)} Rien n’a été gardé.`,
    archiveBusy: "Un dépôt est déjà en cours. Réessayez dans un instant.",
    archiveDoneTitle: "Archive reçue",
    archiveDone: ({ username, followings, found, listCommand }) =>
      `${username ? `@${username} : ` : ""}${plural(followings, "compte suivi", "comptes suivis")} sur X. Retrouvés ici pour l’instant — ${platformName.bluesky} : ${found.bluesky}, ${platformName.fediverse} : ${found.fediverse}. Envoyez \`${listCommand}\` au bot pour les voir.`,
    privacy: "reconnexion garde cette autorisation chiffrée, ne s’en sert que pour suivre les comptes que vous avez demandés, et l’efface quand vous envoyez `oublier`.",
  },
};
