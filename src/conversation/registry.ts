/**
 * The command registry: each command is one small function registered once;
 * its words, argument usage and summary come from the locale files, so the
 * help text and the usage answers are generated from here and never written
 * twice.
 */
import type { CommandContext, Part } from "./context.ts";
import { localeCodes, LOCALES, type Keyword, type Locale } from "./i18n/index.ts";
import { LANGUAGES } from "./i18n/types.ts";
import { commandWord, fold } from "./parse.ts";

/** Every command this engine knows. */
export type CommandId =
  | "help"
  | "status"
  | "list"
  | "ignore"
  | "unignore"
  | "link"
  | "unlink"
  | "reconnect"
  | "auto"
  | "notify"
  | "language"
  | "stop"
  | "forget"
  | "archive";

export interface Command {
  id: CommandId;
  /** Needs a person the store knows; an unknown sender gets the welcome instead. */
  needsPerson: boolean;
  run(ctx: CommandContext): Promise<Part[]>;
}

/** A command word recognised in a message. */
export interface CommandMatch {
  command: Command;
  /** Locales in which this word calls this command (`stop` is both en and fr). */
  languages: string[];
}

export class Registry {
  readonly commands: readonly Command[];
  private readonly byWord = new Map<string, CommandMatch>();
  private readonly keywords = new Map<string, Set<Keyword>>();

  constructor(commands: readonly Command[], locales: readonly Locale[] = Object.values(LOCALES)) {
    this.commands = commands;
    for (const locale of locales) {
      for (const command of commands) {
        for (const word of locale.commands[command.id].words) {
          const key = fold(word);
          const match = this.byWord.get(key);
          if (match && match.command.id !== command.id) {
            throw new Error(`The word "${word}" (${locale.code}) calls both ${match.command.id} and ${command.id}.`);
          }
          if (match) match.languages.push(locale.code);
          else this.byWord.set(key, { command, languages: [locale.code] });
        }
      }
      for (const [keyword, words] of Object.entries(locale.keywords) as [Keyword, string[]][]) {
        for (const word of words) {
          const key = fold(word);
          const set = this.keywords.get(key) ?? new Set<Keyword>();
          set.add(keyword);
          this.keywords.set(key, set);
        }
      }
    }
  }

  /** The command a word calls, in any language, ignoring case, accents and trailing punctuation. */
  find(token: string): CommandMatch | undefined {
    return this.byWord.get(commandWord(token));
  }

  /** Whether `token` is, in any language, the keyword asked for (`oui` is `on`). */
  is(token: string | undefined, keyword: Keyword): boolean {
    return token !== undefined && (this.keywords.get(commandWord(token))?.has(keyword) ?? false);
  }

  /** The main word of a command in a locale (`lier`). */
  word(id: CommandId, locale: Locale): string {
    return locale.commands[id].words[0]!;
  }

  /** A command with its arguments as the locale shows it (`lier <code> | @compte`). */
  usage(id: CommandId, locale: Locale): string {
    const text = locale.commands[id];
    const args = text.args.replace(LANGUAGES, localeCodes().join("|"));
    return args ? `${text.words[0]} ${args}` : text.words[0]!;
  }

  /** The help lines, one per command, in registry order. */
  helpLines(locale: Locale): string[] {
    return this.commands.map((c) => locale.m.helpLine(this.usage(c.id, locale), locale.commands[c.id].summary));
  }
}
