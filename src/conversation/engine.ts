/**
 * The conversation engine: one `Incoming` in, replies and effects out.
 *
 * For each message: never answer bots; count it against the sender's rate
 * limit; refuse oversized input; parse it; recognise the sender by their
 * stable id on the platform they write from (refreshing what the platform
 * tells us about a known person); pick the language; run the command; and
 * route its answer so that nothing private lands in a public reply.
 */
import { IdentityTakenError, type PersonView } from "../store/index.ts";
import { canonicalHandle } from "../store/identities.ts";
import { COMMANDS } from "./commands/index.ts";
import { botNamesFrom, DEFAULT_LIMITS, say, type CommandContext, type EngineContext, type Limits, type Part } from "./context.ts";
import type { Locale } from "./i18n/index.ts";
import type { Effect, Incoming, Outcome } from "./incoming.ts";
import { chooseLocale, confidentLanguage, detectLanguage } from "./language.ts";
import { parseMessage, type BotNames } from "./parse.ts";
import { route } from "./privacy.ts";
import { isMuted, mayHint, rateLimit, rawTooLong } from "./protection.ts";
import { Registry, type Command } from "./registry.ts";

/** Leading words that are not the command: other people's mentions, emoji, punctuation. */
function isNoise(token: string): boolean {
  return token.startsWith("@") || (!/[\p{L}\p{N}]/u.test(token) && !token.includes("?"));
}

export class ConversationEngine {
  readonly registry: Registry;
  readonly limits: Limits;
  private readonly ctx: EngineContext;
  private readonly bot: BotNames;
  private readonly clock: () => Date;

  /**
   * @param commands the command set (this commands by default; later
   *   features register theirs the same way)
   */
  constructor(ctx: EngineContext, commands: readonly Command[] = COMMANDS) {
    this.ctx = ctx;
    this.registry = new Registry(commands);
    this.limits = { ...DEFAULT_LIMITS, ...ctx.limits };
    this.bot = ctx.bot ?? botNamesFrom(ctx.config);
    this.clock = ctx.clock ?? (() => new Date());
  }

  /** Handles one message; the replies are for the bot to deliver, in order. */
  async handle(incoming: Incoming): Promise<Outcome> {
    const { store, config } = this.ctx;
    const now = this.clock();
    const effects: Effect[] = [];
    const silent = (handledAs: string, language = config.defaultLanguage as string): Outcome => ({
      replies: [],
      effects,
      language,
      handledAs,
    });
    if (isMuted(incoming, this.ctx.botStableIds ?? [])) return silent("bot");

    const verdict = await rateLimit(store, incoming, now, this.limits);
    if (verdict === "silent") return silent("rate-limited");

    const tooLongRaw = rawTooLong(incoming, this.limits);
    const parsed = tooLongRaw ? { text: "", tokens: [] } : parseMessage(incoming, this.bot, incoming.sender.platform);
    let person = await this.findSender(incoming);

    const tokens = parsed.tokens;
    let start = 0;
    while (start < tokens.length && isNoise(tokens[start]!)) start++;
    const match = start < tokens.length ? this.registry.find(tokens[start]!) : undefined;
    const detected = detectLanguage(tokens, match);
    // A message that tells nothing (`stop`, a code) is answered in the language last written in.
    let locale = chooseLocale(person?.person.language, detected ?? person?.person.writtenLanguage, config.defaultLanguage);
    // Remembered for what the bots send on their own only on two words' evidence.
    const written = person && detected ? confidentLanguage(tokens) : undefined;
    if (person && written && written !== person.person.writtenLanguage) await store.people.noteWrittenLanguage(person.person.id, written);

    const answer = (handledAs: string, parts: Part[], secrets: ReadonlySet<string> = new Set()): Outcome => ({
      replies: route(parts, {
        isPrivate: incoming.isPrivate,
        platform: incoming.sender.platform,
        locale,
        secrets,
        replyTo: incoming.replyTo,
      }),
      effects,
      language: locale.code,
      handledAs,
    });

    if (verdict === "slow-down") return answer("slow-down", [say(locale.m.slowDown)]);
    if (tooLongRaw || parsed.text.length > this.limits.maxTextCharacters) {
      return answer("too-long", [say(locale.m.tooLong(this.limits.maxTextCharacters))]);
    }
    // Commands then see the person as just recorded (a registry person known
    // by address only gets their account's id on their first message).
    if (person && (await this.refreshIdentity(incoming, person, effects))) person = (await store.personView(person.person.id)) ?? person;

    if (!match) {
      if (!(await mayHint(store, incoming, now, this.limits))) return silent("unknown-silenced", locale.code);
      return answer("unknown", [say(person ? locale.m.hint : locale.m.welcome(incoming.sender.platform))]);
    }
    const command = match.command;
    if (command.needsPerson && !person) {
      return answer(command.id, [say(locale.m.welcome(incoming.sender.platform))]);
    }
    const secrets = new Set<string>();
    const commandContext: CommandContext = {
      store,
      config,
      limits: this.limits,
      now,
      incoming,
      sender: incoming.sender,
      person,
      locale,
      registry: this.registry,
      reconnect: this.ctx.reconnect,
      args: tokens.slice(start + 1),
      secret(value) {
        if (value) secrets.add(value);
        return value;
      },
      effect(effect) {
        effects.push(effect);
      },
      switchLocale(next: Locale) {
        locale = next;
      },
    };
    const parts = await command.run(commandContext);
    return answer(command.id, parts, secrets);
  }

  /**
   * What to say when a bot gave `incoming` up (answering it kept failing):
   * that it could not be answered, in the language an answer would have
   * had. The store is only a help here (it may be what failed): without it,
   * the message's own words decide.
   */
  async couldNotAnswer(incoming: Incoming): Promise<string> {
    const { config } = this.ctx;
    const tokens = rawTooLong(incoming, this.limits) ? [] : parseMessage(incoming, this.bot, incoming.sender.platform).tokens;
    const detected = detectLanguage(tokens, tokens[0] ? this.registry.find(tokens[0]) : undefined);
    const person = await this.findSender(incoming).catch(() => undefined);
    return chooseLocale(person?.person.language, detected ?? person?.person.writtenLanguage, config.defaultLanguage).m.couldNotAnswer;
  }

  /**
   * The person behind a sender: by stable id; or, for an account the store
   * knows only by handle (imported before it ever wrote), by the handle the
   * platform vouches for.
   */
  private async findSender(incoming: Incoming): Promise<PersonView | undefined> {
    const { store } = this.ctx;
    const { platform, stableId, handle } = incoming.sender;
    const byId = await store.identities.find({ platform, stableId });
    if (byId) return store.personView(byId.personId);
    if (!handle) return undefined;
    const byHandle = await store.identities.find({ platform, handle });
    if (byHandle && byHandle.stableId === null) return store.personView(byHandle.personId);
    return undefined;
  }

  /** Records what the message tells about the sender's account (its id, handle, server); says whether it did. */
  private async refreshIdentity(incoming: Incoming, view: PersonView, effects: Effect[]): Promise<boolean> {
    const { store } = this.ctx;
    const s = incoming.sender;
    const identity = view.identities.find(
      (i) =>
        i.platform === s.platform &&
        (i.stableId === s.stableId ||
          (i.stableId === null && s.handle !== null && i.handle?.toLowerCase() === canonicalHandle(s.platform, s.handle).toLowerCase())),
    );
    if (!identity) return false;
    const handle = s.handle ? canonicalHandle(s.platform, s.handle) : null;
    const stale =
      identity.stableId !== s.stableId ||
      (handle !== null && identity.handle !== handle) ||
      identity.verifiedBy === "archive" ||
      (s.apiBase != null && identity.apiBase !== s.apiBase);
    if (!stale) return false;
    try {
      await store.transaction(async (tx) => {
        await tx.identities.attach(view.person.id, {
          platform: s.platform,
          stableId: s.stableId,
          handle,
          apiBase: s.apiBase ?? null,
          verifiedBy: "dm",
        });
        if (identity.verifiedBy === "archive") await tx.matches.refreshForTargets([view.person.id]);
      });
      effects.push({ type: "identity-recorded", personId: view.person.id });
      return true;
    } catch (error) {
      // Someone else already holds that identity or acct: keep ours as it was.
      const uniqueViolation = (error as { code?: unknown }).code === "23505";
      if (!(error instanceof IdentityTakenError) && !uniqueViolation) throw error;
      return false;
    }
  }
}
