/**
 * What a locale provides: every word the bot understands and every sentence
 * it writes. A locale is one file (en.ts, fr.ts…) implementing `Locale`; the
 * compiler refuses a locale that lacks a string.
 */
import type { JobCounts, JobState, MatchCounts, MatchState, Platform, TargetPlatform, Verification } from "../../store/index.ts";
import type { CommandId } from "../registry.ts";
import type { ArchiveProblem } from "../../archive/problem.ts";

/** How a command reads in one language. */
/** In a command's `args`: the codes of the languages the bots speak (`fr|en`), filled in by the registry. */
export const LANGUAGES = "{languages}";

export interface CommandText {
  /** Words that call it; the first is shown in help. Matched case- and accent-insensitively. */
  words: string[];
  /** Its arguments as shown in help and usage answers (`on|off`), or "". */
  args: string;
  /** One line saying what it does. */
  summary: string;
}

/** Argument words the commands understand (matched case- and accent-insensitively). */
export type Keyword = "on" | "off" | "all" | "confirm" | "bluesky" | "fediverse" | "x" | "failed";

export interface StatusFacts {
  identities: { platform: Platform; handle: string | null; verifiedBy: Verification }[];
  /** The X archive the person uploaded (src/store/uploaded-archives.ts), if any. */
  upload: { xUsername: string | null; followings: number } | null;
  counts: MatchCounts;
  language: string | null;
  languageName: string | null;
  notify: boolean;
  autoReconnect: boolean;
  announceMe: boolean;
}

export interface ListEntryFacts {
  n: number;
  handle: string;
  xUsername: string | null;
  state: MatchState;
  /** Why a reconnection failed (`not_found`, `gone: …`), for failed entries. */
  reason: string | null;
  url: string | null;
}

/** Every sentence the bot writes. */
export interface Messages {
  platformName: Record<Platform, string>;
  stateName: Record<MatchState, string>;

  /** Who the bot is, in one or two sentences. */
  intro: string;
  /** For a sender the store does not know: how to become known. */
  welcome(platform: TargetPlatform): string;
  /** The private part of `help`: what the bot knows about the person. */
  aboutYou(facts: { platforms: Platform[]; matches: { platform: TargetPlatform; total: number }[] }): string;
  commandsTitle: string;
  /** One help line: `usage` is the command word with its arguments. */
  helpLine(usage: string, summary: string): string;
  /** `help` asked in public: short, nothing personal. */
  publicHelp(words: string[]): string;
  /** The public reply when the answer went by DM. */
  sentPrivately(platform: TargetPlatform): string;

  hint: string;
  slowDown: string;
  /** A message the bot gave up answering (it kept failing on the bot's side). */
  couldNotAnswer: string;
  /** Bluesky, in public: the answer is private, and the person does not accept the bot's messages. */
  openYourMessages(botHandle: string): string;
  tooLong(maxCharacters: number): string;
  usage(usage: string): string;

  status(facts: StatusFacts): string;

  listTitle(platform: TargetPlatform, page: number, pages: number, total: number): string;
  listEntry(entry: ListEntryFacts): string;
  listEmpty(platform: TargetPlatform): string;
  listNext(command: string): string;

  ignored(handle: string): string;
  unignored(handle: string): string;
  noMatchNamed(handle: string): string;
  notIgnored(handle: string): string;
  alreadyFollowed(handle: string): string;

  linkCodeCreated(facts: { code: string; handle: string; platform: TargetPlatform; minutes: number; command: string }): string;
  linkXRefused: string;
  linkSameAccount: string;
  /** The `archive` answer: a one-time link to the upload page. */
  archiveLink(facts: { url: string; hours: number }): string;
  archiveTooManyLinks: string;
  linkAlreadyYours(handle: string): string;
  linkPlatformTaken(platform: TargetPlatform, handle: string, unlinkCommand: string): string;
  /** A newcomer names another account on the network they write from: a person has one per network. */
  linkSamePlatform(platform: TargetPlatform, handle: string): string;
  /** The code's maker already has an account on the network of the one redeeming it. */
  linkOwnerPlatformTaken(platform: TargetPlatform, handle: string, unlinkCommand: string): string;
  linkTooManyCodes: string;
  linkCodeInvalid(minutes: number): string;
  linkTooManyFailures: string;
  linkCodeInPublic: string;
  linked(platforms: Platform[]): string;
  linkAlreadyDone: string;
  linkAccountTaken: string;

  unlinked(platform: Platform): string;
  /** `unlink x` deleted the X archive the person uploaded. */
  unlinkedUpload: string;
  /** After `unlink`: the reconnections under way that it stopped. */
  unlinkStoppedJobs(count: number): string;
  unlinkNothing(platform: Platform): string;
  unlinkLastIdentity(forgetCommand: string): string;

  notifyOn: string;
  notifyOff: string;
  languageSet: string;
  languageUnknown(available: string[]): string;
  stopped: string;
  /** `unlink` refused: only the X account would be left, which the bots cannot write to. */
  unlinkLastReachable(forgetCommand: string): string;
  /** After `stopped`, when reconnections were under way: they are cancelled. */
  stoppedJobs(count: number, reconnectCommand: string): string;

  forgetAsk(confirmCommand: string, minutes: number): string;
  forgetDone: string;
  /** After `forget`, when a Bluesky app password was among the authorizations. */
  forgetAppPassword: string;
  forgetNoRequest(forgetCommand: string): string;
  forgetUnknown: string;
}

/** What the bot writes about reconnections (commands, progress, summaries). */
export interface ReconnectMessages {
  /** The job is queued: `total` accounts to follow, `added` of them new to it. */
  queued(platform: TargetPlatform, total: number, added: number): string;
  /** Nothing left to follow on that platform. */
  nothing(platform: TargetPlatform): string;
  /** `list failed` with no failure to show. */
  noFailures(platform: TargetPlatform): string;
  /** The person has no account on that platform to follow from. */
  noAccount(platform: TargetPlatform, linkCommand: string): string;
  /** Named accounts that are not among the person's matches. */
  unknownNames(handles: string[]): string;
  /** First authorize: a private one-time link (and, for Mastodon, the import file). */
  needsAuthorization(facts: { platform: TargetPlatform; url: string; hours: number; total: number; exportUrl: string | null }): string;
  /** Told in the DM channel once the web page stored an authorization. */
  authorized(platform: TargetPlatform, resumed: boolean): string;
  /** The stored authorization stopped working: a new link. */
  authorizationExpired(platform: TargetPlatform, url: string): string;
  progress(platform: TargetPlatform, counts: JobCounts): string;
  summary(platform: TargetPlatform, counts: JobCounts, listFailedCommand: string): string;
  /** One line of `status` per recent job. */
  /** `retrying`: waiting after the server failed (`waiting` is for its rate limits). */
  jobLine(platform: TargetPlatform, state: JobState | "retrying", counts: JobCounts, waitUntil: Date | null): string;
  autoOn(platforms: TargetPlatform[]): string;
  autoOnNeedsAuthorization(links: { platform: TargetPlatform; url: string }[]): string;
  autoOff: string;
}

/** One platform's part of an arrival digest: the first handles, and how many more. */
export interface DigestPart {
  platform: TargetPlatform;
  handles: string[];
  more: number;
}

/** What the bot writes first, on its schedule (src/announce). */
export interface AnnounceMessages {
  /** The private digest: `total` people followed on X arrived; how to follow them. */
  digest(facts: { total: number; parts: DigestPart[]; reconnectCommand: string; listCommand: string; notifyOffCommand: string }): string;
  /** The bot's public post: `count` people arrived on `platform`; `named` (handles) agreed to be named. */
  publicPost(facts: { platform: TargetPlatform; count: number; named: string[] }): string;
}

/** The small web pages (authorize an account), in this language. */
export interface WebMessages {
  title: string;
  linkInvalid: string;
  /** Where a sign-in (Bluesky, Mastodon) comes back when it did not work: declined, link expired, the server failed, our failure. */
  blueskyOAuthTitle: string;
  oauthProblem: Record<"declined" | "expired" | "failed" | "internal", string>;
  /** Any page: an address nothing serves (with a link to the front page after it). */
  notFoundTitle: string;
  notFound: string;
  /** Any page: a request refused before it was read (too large, malformed), or our own failure. */
  errorTitle: string;
  badRequest: string;
  internalError: string;
  blueskyIntro(handle: string): string;
  blueskyOAuthButton: string;
  appPasswordTitle: string;
  appPasswordHelp: string;
  appPasswordLabel: string;
  appPasswordSubmit: string;
  /** Why an app password did not open the account (BlueskyLoginError's problem). */
  appPasswordProblem: Record<"not_app_password" | "wrong_password" | "unknown_account" | "account_unavailable" | "rate_limited" | "unreachable", string>;
  /** Too many wrong app passwords on one link. */
  appPasswordTooManyTries(command: string): string;
  mastodonIntro(acct: string, instance: string): string;
  mastodonButton(instance: string): string;
  wrongAccount(expected: string): string;
  failed: string;
  doneTitle: string;
  done(platform: TargetPlatform): string;
  privacy: string;
  exportTitle: string;
  exportIntro(count: number): string;
  /** Nothing left to export: every match on the fediverse is followed or settled. */
  exportNothing: string;
  /** The file holds only the `shown` most recent of `total` (Mastodon's follow limit, `limit`). */
  exportCapped(shown: number, total: number, limit: number): string;
  exportButton: string;
  /** The X archive upload page (the `archive` command's link). */
  archiveTitle: string;
  archiveIntro: string;
  archiveLabel: string;
  archiveButton: string;
  archiveLinkInvalid(command: string): string;
  archiveNothing: string;
  archiveTooLarge(megabytes: number): string;
  /**
   * An upload refused, nothing kept: `problem` is what is wrong, in `file`
   * (the name the person gave; undefined: the files as a whole) at `line`.
   */
  archiveRefused(problem: ArchiveProblem | undefined, file: string | undefined, line: number | undefined): string;
  archiveBusy: string;
  archiveDoneTitle: string;
  archiveDone(facts: { username: string | null; followings: number; found: Record<TargetPlatform, number>; listCommand: string }): string;
  /** The service's front page: what the bot does, and where to write to it. */
  homeIntro: string;
  homeWhere: string;
}

export interface Locale {
  /** ISO 639-1 code, as saved in `person.language`. */
  code: string;
  /** The language's name in itself (`Français`). */
  name: string;
  /** Common words and characters that betray the language in a free-text message. */
  detect: { words: string[]; characters: RegExp | null };
  keywords: Record<Keyword, string[]>;
  commands: Record<CommandId, CommandText>;
  m: Messages;
  r: ReconnectMessages;
  a: AnnounceMessages;
  web: WebMessages;
}
