/** English. */
import type { JobCounts } from "../../store/index.ts";
import type { ArchiveProblem } from "../../archive/problem.ts";
import { LANGUAGES, type Locale, type StatusFacts } from "./types.ts";

const platformName = { x: "X", bluesky: "Bluesky", fediverse: "Mastodon (fediverse)" } as const;
const onOff = (b: boolean) => (b ? "on" : "off");

function status(f: StatusFacts): string {
  const lines = ["Your accounts:"];
  for (const i of f.identities) {
    const how = i.verifiedBy === "archive" ? " (claimed by an archive, not verified)" : "";
    lines.push(`• ${platformName[i.platform]}: ${i.handle ? `@${i.handle}` : "(no handle known)"}${how}`);
  }
  if (f.upload) {
    lines.push(`• The X archive you uploaded${f.upload.xUsername ? ` (@${f.upload.xUsername})` : ""}: ${plural(f.upload.followings, "account", "accounts")} followed`);
  }
  lines.push("", "People you followed on X who are here:");
  for (const p of ["bluesky", "fediverse"] as const) {
    const c = f.counts[p];
    lines.push(
      c.total === 0
        ? `• ${platformName[p]}: none yet`
        : `• ${platformName[p]}: ${c.total} — ${c.pending} to follow, ${c.followed + c.already_following} followed, ${c.failed} failed, ${c.ignored} ignored`,
    );
  }
  lines.push(
    "",
    `Settings: language ${f.languageName ?? "detected from your messages"}, notifications ${onOff(f.notify)}, automatic reconnection ${onOff(f.autoReconnect)}, public announcement of your arrival ${onOff(f.announceMe)}.`,
  );
  return lines.join("\n");
}

/** What is wrong with an uploaded archive, for the person who sent it. */
function archiveProblem(problem: ArchiveProblem | undefined, file: string | undefined, line: number | undefined): string {
  const what = file ?? "What you sent";
  const where = line === undefined ? what : `${what} (line ${line})`;
  switch (problem?.kind) {
    case "not-archive":
      return `${what} is not an X archive: choose the .zip X sent you, or its files data/account.js and data/following.js.`;
    case "no-account":
      return "data/account.js is missing: it says whose archive this is. Choose it too.";
    case "bad-account":
      return "data/account.js does not name a valid X account.";
    case "other-account":
      return `This is the archive of another X account than yours (${problem.yours}): upload that account's archive.`;
    case "too-large":
      return `${what} is larger than ${problem.mb} MB — far more than any X archive data file.`;
    case "too-large-in-all":
      return `${what} holds data files (account.js, following.js) of more than ${problem.mb} MB in all once unpacked — far more than any X archive.`;
    case "zip-bomb":
      return `${what} is compressed far beyond any real archive file.`;
    case "too-many-parts":
      return `${what} holds more than ${problem.max} parts of one data file (following-part1.js, following-part2.js…) — far more than any X archive.`;
    case "damaged":
      return `${where} is damaged or cut short: download your archive from X again.`;
    case "bad-content":
    case undefined:
      return `${where} is not written the way X writes its archive files.`;
  }
}

const reasonNames: Record<string, string> = {
  not_found: "not found",
  gone: "account deleted or suspended",
  blocked: "blocked",
  failed: "error",
  requested: "request pending",
};
/** Details worth telling apart from their outcome (`failed: follow_limit`). */
const reasonDetails: Record<string, string> = {
  follow_limit: "your server's limit on follows was reached",
  self: "it is your own account",
  moved: "the account moved",
};
/** `failed: follow_limit` → its detail's name, else the outcome's (`gone: suspended` → `account deleted or suspended`). */
const reasonText = (reason: string) => {
  const [outcome, detail] = reason.split(":").map((s) => s.trim());
  return (detail && reasonDetails[detail]) || reasonNames[outcome!] || reason;
};
const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
const accounts = (n: number) => plural(n, "account", "accounts");

function tally(c: JobCounts): string {
  const parts = [`${c.followed} followed`];
  if (c.requested) parts.push(`${c.requested} requested (locked accounts)`);
  parts.push(`${c.already_following} already followed`);
  const missing = c.not_found + c.gone;
  if (missing) parts.push(`${missing} not found`);
  if (c.blocked) parts.push(`${c.blocked} blocked`);
  if (c.failed) parts.push(`${c.failed} failed`);
  return parts.join(", ");
}

const jobState = {
  queued: "queued",
  running: "in progress",
  waiting: "waiting for the network's limits",
  retrying: "paused: the server did not answer, I'll try again",
  needs_authorization: "waiting for your authorization",
  done: "finished",
  cancelled: "cancelled",
} as const;

export const en: Locale = {
  code: "en",
  name: "English",
  detect: {
    words: [
      "the", "is", "are", "you", "my", "me", "i", "what", "how", "who", "please", "thanks", "thank", "hello",
      "hey", "can", "do", "does", "this", "that", "with", "for", "and", "not", "want", "find", "friends", "work",
    ],
    characters: null,
  },
  keywords: {
    on: ["on", "yes", "enable"],
    off: ["off", "no", "disable"],
    all: ["all", "everything"],
    confirm: ["confirm", "yes"],
    bluesky: ["bluesky", "bsky"],
    fediverse: ["mastodon", "fediverse", "fedi"],
    x: ["x", "twitter"],
    failed: ["failed", "failures"],
  },
  commands: {
    help: { words: ["help", "hi", "hello", "?"], args: "", summary: "who I am, what I know about you, the commands" },
    status: { words: ["status"], args: "", summary: "your linked accounts, your matches and your settings" },
    list: { words: ["list"], args: "[failed] [bluesky|mastodon] [page]", summary: "the people you followed on X who are on Bluesky or Mastodon (`failed`: those I could not follow, and why)" },
    ignore: { words: ["ignore"], args: "@handle", summary: "leave someone out of your lists" },
    unignore: { words: ["unignore"], args: "@handle", summary: "put an ignored person back in your lists" },
    link: { words: ["link"], args: "<code> | @handle", summary: "join another of your accounts: `link @you@instance` gives a code, send `link <code>` from that account" },
    unlink: { words: ["unlink"], args: "bluesky|mastodon|x", summary: "detach one of your accounts" },
    notify: { words: ["notify", "notifications"], args: "on|off", summary: "messages when people you followed on X arrive" },
    language: { words: ["language", "lang"], args: LANGUAGES, summary: "the language I answer in" },
    reconnect: { words: ["reconnect", "follow"], args: "[all|N|@handle…] [bluesky|mastodon]", summary: "I follow them for you from your account: all, the first N, or the ones you name" },
    auto: { words: ["auto"], args: "on|off", summary: "follow newcomers you followed on X automatically" },
    stop: { words: ["stop", "unsubscribe"], args: "", summary: "I never write to you first again" },
    forget: { words: ["forget"], args: "[confirm]", summary: "delete everything I know about you (asks to confirm)" },
    archive: { words: ["archive"], args: "", summary: "a private link to upload your X archive: I find whom you followed there" },
  },
  m: {
    platformName,
    stateName: {
      pending: "to follow",
      followed: "followed",
      already_following: "already followed",
      failed: "failed",
      ignored: "ignored",
    },
    intro:
      "Hi! I'm reconnexion: I find the people you followed on X who are now on Bluesky or Mastodon, and tell you when more arrive.",
    welcome: (platform) =>
      `Hi! I'm reconnexion: I find the people you followed on X who are now on Bluesky or Mastodon. I don't know this ${platformName[platform]} account yet. To be known: send me \`archive\` to upload your X archive, or ask the registration platform for a code and send it to me in a private message as \`link <code>\`, or, if I already know another of your accounts, send \`link @this-account\` from there.`,
    aboutYou: ({ platforms, matches }) => {
      const known = platforms.map((p) => platformName[p]).join(", ");
      const found = matches.map((m) => `${m.total} on ${platformName[m.platform]}`).join(", ");
      return `I know your accounts on ${known}. People you followed on X found here: ${found}.`;
    },
    commandsTitle: "Commands:",
    helpLine: (usage, summary) => `• ${usage} — ${summary}`,
    publicHelp: (words) =>
      `Hi! I'm reconnexion: I find the people you followed on X who are now here. Send me a private message: ${words.join(", ")}.`,
    sentPrivately: (platform) =>
      platform === "bluesky"
        ? "I've answered you in a private message. Nothing there? Follow me, or allow messages from everyone, then ask again."
        : "I've answered you in a private message.",
    hint: "I didn't understand that. Send `help` to see what I can do.",
    couldNotAnswer: "Sorry, I couldn't answer that message: something went wrong on my side. Please send it again later.",
    openYourMessages: (botHandle) =>
      `My answer is private, but you don't accept messages from me. Follow @${botHandle}, or allow messages from everyone in your chat settings, then write to me again.`,
    slowDown: "That's a lot of messages: slow down, please. I'll answer again in a minute.",
    tooLong: (max) => `Your message is too long for me (more than ${max} characters). Please send a short command, such as \`help\`.`,
    usage: (usage) => `Usage: ${usage}`,
    status,
    listTitle: (platform, page, pages, total) =>
      `People you followed on X who are on ${platformName[platform]} (${total}, page ${page} of ${pages}):`,
    listEntry: (e) =>
      `${e.n}. @${e.handle}${e.xUsername ? ` (X: @${e.xUsername})` : ""} — ${en.m.stateName[e.state]}${e.reason ? ` (${reasonText(e.reason)})` : ""}${e.url ? ` ${e.url}` : ""}`,
    listEmpty: (platform) => `Nobody you followed on X is on ${platformName[platform]} yet. I'll tell you when someone arrives.`,
    listNext: (command) => `Next page: \`${command}\``,
    ignored: (handle) => `@${handle} is out of your lists and reconnections.`,
    unignored: (handle) => `@${handle} is back in your lists.`,
    noMatchNamed: (handle) => `@${handle} is not among the people you followed on X.`,
    notIgnored: (handle) => `@${handle} was not ignored.`,
    alreadyFollowed: (handle) => `You already follow @${handle}.`,
    linkCodeCreated: ({ code, handle, platform, minutes, command }) =>
      `Your code: ${code}\nSend \`${command} ${code}\` to me from @${handle} on ${platformName[platform]} within ${minutes} minutes. It works once, and only from that account.`,
    linkXRefused:
      "An X account can't be linked by name: anyone could type one. It comes only from the registration platform — or send `archive` to upload your X archive: I find whom you followed there.",
    archiveLink: ({ url, hours }) =>
      `Upload your X archive here — just its files data/account.js and data/following.js are enough (or the whole .zip X sent you): ${url}\nThe link is yours alone and works for ${hours} hours. I only read whom you followed.`,
    archiveTooManyLinks: "You've asked for several upload links this hour: use the last one, or try again later.",
    linkSameAccount: "That's the account you are writing from.",
    linkAlreadyYours: (handle) => `@${handle} is already linked to you.`,
    linkPlatformTaken: (platform, handle, unlinkCommand) =>
      `You already have a ${platformName[platform]} account linked (@${handle}). Send \`${unlinkCommand}\` first to replace it.`,
    linkSamePlatform: (platform, handle) =>
      `You are writing from a ${platformName[platform]} account, and a person has one account per network here. To use @${handle} instead, write to me from it; to link an account on the other network, name that one.`,
    linkOwnerPlatformTaken: (platform, handle, unlinkCommand) =>
      `This code was made by an account that already has a ${platformName[platform]} account linked (@${handle}), and a person has one per network. To link this one instead, send \`${unlinkCommand}\` from that account first, then ask for a new code.`,
    linkTooManyCodes: "You've asked for many codes in a short time. Please try again in an hour.",
    linkCodeInvalid: (minutes) =>
      `That code doesn't work. A code is used once, within ${minutes} minutes, from the account it was made for: ask for a new one if needed.`,
    linkTooManyFailures: "Too many wrong codes. Please wait an hour before trying again.",
    linkCodeInPublic:
      "Never post a code in public! I've made that code unusable. Ask for a new one and send it to me in a private message.",
    linked: (platforms) => `Done: your accounts are joined (${platforms.map((p) => platformName[p]).join(", ")}). Send \`status\` to see what I found.`,
    linkAlreadyDone: "These accounts are already joined.",
    linkAccountTaken: "This account already belongs to someone else here; I can't link it.",
    unlinked: (platform) => `Your ${platformName[platform]} account is detached.`,
    unlinkedUpload: "The X archive you uploaded is deleted, with the accounts it found that you had not acted on.",
    unlinkStoppedJobs: (count) =>
      `${count === 1 ? "The reconnection under way that depended on it is" : `The ${count} reconnections under way that depended on it are`} stopped; the follows already made stay.`,
    unlinkNothing: (platform) => `You have no ${platformName[platform]} account linked.`,
    unlinkLastReachable: (forgetCommand) =>
      `That's the last account I can write to you on: without it, I'd keep your X account and what it followed with no way for you to reach me again. To delete everything instead, send \`${forgetCommand}\`.`,
    unlinkLastIdentity: (forgetCommand) =>
      `That's the only account I know for you. To delete everything instead, send \`${forgetCommand}\`.`,
    notifyOn: "Notifications on: I'll tell you when people you followed on X arrive.",
    notifyOff: "Notifications off: I won't message you about new arrivals.",
    languageSet: "From now on I'll answer you in English.",
    languageUnknown: (available) => `I speak: ${available.join(", ")}.`,
    stopped: "Understood: I will never write to you first again (notifications, automatic reconnection and public announcement of your arrival off). You can still ask me anything.",
    stoppedJobs: (count, reconnectCommand) =>
      `${count === 1 ? "Your reconnection under way is" : `Your ${count} reconnections under way are`} stopped too; the follows already made stay. \`${reconnectCommand}\` starts again whenever you like.`,
    forgetAsk: (confirmCommand, minutes) =>
      `This deletes everything I know about you: accounts, matches, settings. It can't be undone. To go ahead, send \`${confirmCommand}\` within ${minutes} minutes.`,
    forgetDone: "Done: I've deleted everything I knew about you. Goodbye!",
    forgetAppPassword:
      "You had given me a Bluesky app password: I've closed its session. To be sure, delete the password itself in Bluesky (Settings → Privacy and security → App passwords).",
    forgetNoRequest: (forgetCommand) => `Nothing to confirm: send \`${forgetCommand}\` first.`,
    forgetUnknown: "I don't know anything about you: there's nothing to delete.",
  },
  r: {
    queued: (platform, total, added) =>
      `On it: I'm following ${accounts(total)} for you on ${platformName[platform]}${added < total ? ` (${added} just added)` : ""}. You'll get a summary when it's done; \`status\` shows progress.`,
    nothing: (platform) => `Nobody left to follow on ${platformName[platform]}: everyone you followed on X there is followed or ignored.`,
    noFailures: (platform) => `No failed reconnection on ${platformName[platform]}.`,
    noAccount: (platform, linkCommand) =>
      `I don't know your ${platformName[platform]} account, so I can't follow anyone from it. Send \`${linkCommand}\` to link it first.`,
    unknownNames: (handles) => `Not among the people you followed on X: ${handles.map((h) => `@${h}`).join(", ")}.`,
    needsAuthorization: ({ platform, url, hours, total, exportUrl }) =>
      [
        `To follow ${accounts(total)} for you on ${platformName[platform]}, I need your permission, given on your server's own page (never by message). Open this private link (valid ${hours} h, once): ${url}`,
        "Your request is saved: it starts as soon as you've authorized.",
        ...(exportUrl
          ? [`Prefer to do it yourself? This file imports into Mastodon (Preferences → Import and export → Import, "Following list"): ${exportUrl}`]
          : []),
      ].join("\n"),
    authorized: (platform, resumed) =>
      `Thanks: your ${platformName[platform]} account is authorized.${resumed ? " Your reconnection is starting; I'll send you a summary." : " Send `reconnect` when you want me to follow people for you."}`,
    authorizationExpired: (platform, url) =>
      `My permission to act on your ${platformName[platform]} account has expired or was revoked, so your reconnection is paused. To resume, authorize again here (private link): ${url}`,
    progress: (platform, c) => `Reconnection on ${platformName[platform]}: ${c.total - c.todo} of ${c.total} done — ${tally(c)}.`,
    summary: (platform, c, listFailed) => {
      const problems = c.not_found + c.gone + c.blocked + c.failed;
      return `Reconnection on ${platformName[platform]} finished: ${tally(c)}.${problems ? ` To see which ones didn't work: \`${listFailed}\`.` : ""}`;
    },
    jobLine: (platform, state, c, waitUntil) =>
      `• Reconnection on ${platformName[platform]}: ${jobState[state]}${waitUntil && (state === "waiting" || state === "retrying") ? ` (resumes ${waitUntil.toISOString().slice(11, 16)} UTC)` : ""} — ${c.total - c.todo}/${c.total}: ${tally(c)}`,
    autoOn: (platforms) =>
      `Automatic reconnection on: when people you followed on X arrive on ${platforms.map((p) => platformName[p]).join(" or ")}, I follow them for you.`,
    autoOnNeedsAuthorization: (links) =>
      [
        "Automatic reconnection on. It needs your permission to follow from your account; authorize here (private links, valid once):",
        ...links.map((l) => `• ${platformName[l.platform]}: ${l.url}`),
      ].join("\n"),
    autoOff: "Automatic reconnection off: I'll only follow people when you ask.",
  },
  a: {
    digest: ({ total, parts, reconnectCommand, listCommand, notifyOffCommand }) =>
      [
        `${total === 1 ? "Someone you followed on X has" : `${total} people you followed on X have`} just arrived:`,
        ...parts.map((p) => `• ${platformName[p.platform]}: ${p.handles.map((h) => `@${h}`).join(", ")}${p.more ? ` and ${p.more} more` : ""}`),
        `Send \`${reconnectCommand}\` and I'll follow ${total === 1 ? "them" : "them all"} for you, or \`${listCommand}\` to see who. (No more of these messages: \`${notifyOffCommand}\`.)`,
      ].join("\n"),
    publicPost: ({ platform, count, named }) => {
      const names = named.map((h) => `@${h}`);
      const list = names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)}` : (names[0] ?? "");
      const welcome =
        count === 1
          ? list ? `Welcome ${list}, just arrived on ${platformName[platform]} from X!` : `Someone just arrived on ${platformName[platform]} from X: welcome!`
          : `Welcome to the ${count} people who just arrived on ${platformName[platform]} from X${list ? `, among them ${list}` : ""}!`;
      return `${welcome} Left X too? Send me a message: I'll tell you who you followed there is here, and can follow them for you.`;
    },
  },
  web: {
    title: "reconnexion — authorize your account",
    homeIntro: "I find the accounts you followed on X that are now on the fediverse (Mastodon…) or Bluesky, and I can follow them for you. Everything happens in private messages: send me `help`.",
    homeWhere: "Write to me at:",

    notFoundTitle: "Nothing here",
    notFound: "There is nothing at this address. The front page says what reconnexion does and where to write to it.",
    errorTitle: "Error",
    badRequest: "This request could not be read (too large, or malformed).",
    internalError: "Something went wrong on our side: please try again in a moment.",
    blueskyOAuthTitle: "Bluesky authorization",
    oauthProblem: {
      declined: "You declined the authorization. Nothing was changed. You can start again from the bot whenever you like.",
      expired: "This authorization link has expired or was already used. Ask the bot for a new link.",
      failed: "Bluesky could not complete the authorization. Please start again from the bot.",
      internal: "Something went wrong on our side while saving your authorization. Please start again from the bot in a moment.",
    },
    linkInvalid: "This link has expired or was already used. Ask the bot again: send it `reconnect` in a private message.",
    blueskyIntro: (handle) => `Let reconnexion follow, from @${handle}, the people you followed on X. It can only create follows; you can revoke it at any time.`,
    blueskyOAuthButton: "Sign in with Bluesky",
    appPasswordTitle: "Or use an app password",
    appPasswordHelp: "Create one in Bluesky: Settings → Privacy and security → App passwords. Never your main password.",
    appPasswordLabel: "App password (xxxx-xxxx-xxxx-xxxx)",
    appPasswordSubmit: "Authorize",
    appPasswordProblem: {
      not_app_password: "This is not an app password: it looks like xxxx-xxxx-xxxx-xxxx. Create one in Bluesky, and never give your main password.",
      wrong_password: "Bluesky did not accept this app password for this account. Check it (format xxxx-xxxx-xxxx-xxxx), or create a new one.",
      unknown_account: "Bluesky does not know this account any more. Ask the bot again from your current account.",
      account_unavailable: "This Bluesky account is suspended or deactivated.",
      rate_limited: "Bluesky says there were too many attempts. Wait a few minutes, then try again.",
      unreachable: "Your Bluesky server could not be reached. Try again in a moment.",
    },
    appPasswordTooManyTries: (command) => `Too many app passwords were refused on this link. Ask the bot for a new link: send it \`${command}\` in a private message.`,
    mastodonIntro: (acct, instance) => `Let reconnexion follow, from @${acct}, the people you followed on X. You'll authorize it on ${instance}; it only asks to read and create follows.`,
    mastodonButton: (instance) => `Authorize on ${instance}`,
    wrongAccount: (expected) => `You authorized another account. Sign in as @${expected} and try again.`,
    failed: "Authorization failed. Please try again in a moment.",
    doneTitle: "All set",
    done: (platform) => `Your ${platformName[platform]} account is authorized. You can close this page: the bot will message you.`,
    exportTitle: "Your following list for Mastodon",
    exportIntro: (n) => `${n === 1 ? "1 account you followed on X is" : `${n} accounts you followed on X are`} on the fediverse and not followed from here yet. Download the file, then in Mastodon: Preferences → Import and export → Import, type "Following list". This link works once.`,
    exportButton: "Download following_accounts.csv",
    exportNothing: "Every account you followed on X that is on the fediverse is followed already, or could not be: there is nothing left to import.",
    exportCapped: (shown, total, limit) => `The file holds the ${shown.toLocaleString("en")} most recent of the ${total.toLocaleString("en")}: Mastodon imports no more at once (it refuses the whole file if it goes beyond the ${limit.toLocaleString("en")} follows it allows, your current follows included). Once they are followed, ask the bot again for the rest.`,
    archiveTitle: "Your X archive",
    archiveIntro: "Choose the files data/account.js and data/following.js from your X archive (Settings → Your account → Download an archive of your data), or the whole .zip if it is small. reconnexion reads only whom you followed, and keeps nothing else.",
    archiveLabel: "Archive (.zip) or its data files (.js)",
    archiveButton: "Upload",
    archiveLinkInvalid: (command) => `This link has expired or was already used. Ask the bot again: send it \`${command}\` in a private message.`,
    archiveNothing: "No archive came with the form: choose the .zip, or the data/account.js and data/following.js files.",
    archiveTooLarge: (mb) => `That is more than ${mb} MB. Upload just the files data/account.js and data/following.js from inside the archive.`,
    archiveRefused: (problem, file, line) => `${archiveProblem(problem, file, line)} Nothing was kept.`,
    archiveBusy: "An upload is already under way. Try again in a moment.",
    archiveDoneTitle: "Archive received",
    archiveDone: ({ username, followings, found, listCommand }) =>
      `${username ? `@${username}: ` : ""}${accounts(followings)} you followed on X. Found here so far — ${platformName.bluesky}: ${found.bluesky}, ${platformName.fediverse}: ${found.fediverse}. Send the bot \`${listCommand}\` to see them.`,
    privacy: "reconnexion keeps this permission encrypted, uses it only to follow the accounts you asked for, and deletes it when you send `forget`.",
  },
};
